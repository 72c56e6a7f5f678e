#include "pipeline/dicom/synth.hpp"
#include "pipeline/imaging/derived_series.hpp"
#include "pipeline/imaging/kernels.hpp"
#include "pipeline/imaging/volume.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> synth_files(const fs::path& out, const std::string& modality,
                                  const std::string& syntax = "explicit-le", int instances = 6) {
  synth_options options;
  options.out = out;
  options.series = 1;
  options.instances = instances;
  options.rows = 24;
  options.cols = 20;
  options.modality = modality;
  options.transfer_syntax = syntax;
  auto written = synthesize(options);
  EXPECT_TRUE(written) << written.error().message;
  return written->files;
}

std::string tag(const fs::path& file, const DcmTagKey& key) {
  DcmFileFormat ff;
  EXPECT_TRUE(ff.loadFile(file.c_str()).good());
  OFString value;
  ff.getDataset()->findAndGetOFStringArray(key, value);
  return value.c_str();
}

// Writes slices of an oblique series (rotated 30 degrees about x) with the
// given slice indices in the given file order.
std::vector<fs::path> oblique_series(const fs::path& dir, const std::vector<int>& order,
                                     bool with_positions) {
  double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
  vec3 row{1, 0, 0}, column{0, c, s};
  vec3 normal = cross(row, column);
  char uid[100];
  std::string study = dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT);
  std::string series = dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT);
  std::vector<fs::path> files;
  fs::create_directories(dir);
  for (std::size_t n = 0; n < order.size(); ++n) {
    int index = order[n];
    DcmFileFormat file;
    auto& ds = *file.getDataset();
    ds.putAndInsertString(DCM_SOPClassUID, UID_MRImageStorage);
    ds.putAndInsertString(DCM_SOPInstanceUID,
                          dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
    ds.putAndInsertString(DCM_StudyInstanceUID, study.c_str());
    ds.putAndInsertString(DCM_SeriesInstanceUID, series.c_str());
    ds.putAndInsertString(DCM_Modality, "MR");
    ds.putAndInsertString(DCM_InstanceNumber, std::to_string(index + 1).c_str());
    if (with_positions) {
      char text[128];
      vec3 p{5 + 3 * normal[0] * index, 7 + 3 * normal[1] * index, 9 + 3 * normal[2] * index};
      std::snprintf(text, sizeof text, "%.6f\\%.6f\\%.6f", p[0], p[1], p[2]);
      ds.putAndInsertString(DCM_ImagePositionPatient, text);
      std::snprintf(text, sizeof text, "1\\0\\0\\0\\%.6f\\%.6f", c, s);
      ds.putAndInsertString(DCM_ImageOrientationPatient, text);
    }
    ds.putAndInsertString(DCM_PixelSpacing, "0.5\\0.7");
    ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds.putAndInsertUint16(DCM_Rows, 2);
    ds.putAndInsertUint16(DCM_Columns, 3);
    ds.putAndInsertUint16(DCM_BitsAllocated, 16);
    ds.putAndInsertUint16(DCM_BitsStored, 16);
    ds.putAndInsertUint16(DCM_HighBit, 15);
    ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
    std::vector<Uint16> pixels(6, static_cast<Uint16>(100 * index));
    ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(), 6);
    auto path = dir / ("file" + std::to_string(n) + ".dcm");
    EXPECT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
    files.push_back(path);
  }
  return files;
}

} // namespace

TEST(volume, shuffled_oblique_slices_are_sorted_along_the_normal) {
  fixtures::temp_dir dir;
  std::vector<int> order{3, 0, 4, 1, 2};
  auto files = oblique_series(dir.path(), order, true);
  auto loaded = load_series(files);
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_EQ(loaded->series.size(), 1u);
  auto& v = loaded->series[0].image;
  EXPECT_EQ(v.nz, 5u);
  for (std::size_t z = 0; z < v.nz; ++z)
    EXPECT_EQ(v.at(0, 0, z), static_cast<std::int16_t>(100 * z)) << "slice " << z;
  EXPECT_NEAR(v.spacing[2], 3.0, 1e-4); // the orientation is written with 6 decimals
  EXPECT_NEAR(v.spacing[0], 0.7, 1e-9) << "x spacing is the column spacing";
  EXPECT_NEAR(v.spacing[1], 0.5, 1e-9);
  EXPECT_NEAR(v.origin[0], 5, 1e-6);
  EXPECT_NEAR(v.slice_direction[2], std::cos(M_PI / 6), 1e-6);
  EXPECT_EQ(loaded->series[0].files[0], files[1]) << "file1 holds index 0";
}

TEST(volume, without_positions_instance_numbers_order_the_slices) {
  fixtures::temp_dir dir;
  auto files = oblique_series(dir.path(), {2, 0, 1}, false);
  auto loaded = load_series(files);
  ASSERT_TRUE(loaded) << loaded.error().message;
  auto& v = loaded->series[0].image;
  for (std::size_t z = 0; z < v.nz; ++z)
    EXPECT_EQ(v.at(1, 1, z), static_cast<std::int16_t>(100 * z));
}

TEST(volume, rescale_gives_hounsfield_units) {
  fixtures::temp_dir dir;
  auto loaded = load_series(synth_files(dir.path(), "CT"));
  ASSERT_TRUE(loaded);
  auto& v = loaded->series[0].image;
  EXPECT_EQ(v.slope, 1);
  EXPECT_EQ(v.intercept, -1024);
  // The synthetic phantom: air around the body, around -1000 HU.
  EXPECT_NEAR(v.value(v.at(0, 0, 0)), -1000, 10);
}

TEST(volume, compressed_inputs_decode_to_the_same_voxels) {
  fixtures::temp_dir dir;
  auto plain = load_series(synth_files(dir / "plain", "MR"));
  ASSERT_TRUE(plain);
  for (auto syntax : {"jpeg-lossless", "jpeg-ls", "rle"}) {
    auto coded = load_series(synth_files(dir / syntax, "MR", syntax));
    ASSERT_TRUE(coded) << syntax << ": " << coded.error().message;
    EXPECT_EQ(coded->series[0].image.voxels, plain->series[0].image.voxels) << syntax;
  }
}

TEST(volume, jpeg_2000_fails_naming_the_file_and_its_transfer_syntax) {
  auto file = fixtures::pydicom_test_files() / "693_J2KI.dcm";
  auto loaded = load_series({file});
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("693_J2KI.dcm"), std::string::npos);
  EXPECT_NE(loaded.error().message.find("JPEG 2000"), std::string::npos) << loaded.error().message;
}

TEST(volume, one_unreadable_instance_is_left_out_and_named_instead_of_failing_the_series) {
  fixtures::temp_dir dir;
  auto files = synth_files(dir / "ct", "CT");
  // JPEG 2000, which this DCMTK cannot decode, among the good slices.
  files.push_back(fixtures::pydicom_test_files() / "693_J2KI.dcm");
  auto loaded = load_series(files);
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_EQ(loaded->series.size(), 1u);
  EXPECT_EQ(loaded->series[0].image.nz, 6u);
  ASSERT_EQ(loaded->unreadable.size(), 1u);
  EXPECT_TRUE(loaded->unreadable[0].find("693_J2KI.dcm: cannot decode its pixel data in JPEG "
                                         "2000") != std::string::npos)
      << loaded->unreadable[0];
}

TEST(volume, compressed_pixel_data_under_an_uncompressed_label_is_named_as_such) {
  fixtures::temp_dir dir;
  auto file = synth_files(dir / "ct", "CT", "explicit-le", 1).front();
  DcmFileFormat format;
  ASSERT_TRUE(format.loadFile(file.c_str()).good());
  // A JPEG-LS code stream (SOI, SOF55) where 24 x 20 16-bit samples belong.
  const Uint8 coded[] = {0xff, 0xd8, 0xff, 0xf7, 0x00, 0x0b, 0x10, 0x00, 0x18, 0x00, 0x14, 0x01};
  ASSERT_TRUE(
      format.getDataset()->putAndInsertUint8Array(DCM_PixelData, coded, sizeof coded).good());
  ASSERT_TRUE(format.saveFile(file.c_str(), EXS_LittleEndianExplicit).good());
  auto loaded = load_series({file});
  ASSERT_FALSE(loaded);
  auto& message = loaded.error().message;
  EXPECT_TRUE(message.find("its pixel data holds 12 bytes, not the 960 that 24 x 20 uncompressed "
                           "16-bit samples take") != std::string::npos)
      << message;
  EXPECT_TRUE(message.find("JPEG marker (FF D8)") != std::string::npos) << message;
}

TEST(volume, files_without_pixels_are_left_out_with_a_reason) {
  auto pd = fixtures::pydicom_test_files();
  auto loaded = load_series({pd / "CT_small.dcm", pd / "rtplan.dcm"});
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->series.size(), 1u);
  ASSERT_EQ(loaded->skipped.size(), 1u);
  EXPECT_NE(loaded->skipped[0].find("rtplan.dcm: no pixel data"), std::string::npos);
}

TEST(derived_series, has_new_uids_same_study_references_and_geometry) {
  fixtures::temp_dir dir;
  auto files = synth_files(dir / "in", "CT");
  auto loaded = load_series(files);
  ASSERT_TRUE(loaded);
  auto& source = loaded->series[0];
  auto image = mip(source.image, 5.0); // 2 slices per slab
  derived_series_request request;
  request.source = &source;
  request.image = &image;
  request.stream = "mip-stream";
  request.derivation = "mip slab 5 mm";
  request.out_dir = dir / "out";
  auto written = write_derived_series(request);
  ASSERT_TRUE(written) << written.error().message;
  ASSERT_EQ(written->size(), 3u);
  auto& first = written->front();
  EXPECT_EQ(tag(first, DCM_StudyInstanceUID), tag(files[0], DCM_StudyInstanceUID));
  EXPECT_EQ(tag(first, DCM_PatientName), tag(files[0], DCM_PatientName));
  EXPECT_EQ(tag(first, DCM_PatientID), tag(files[0], DCM_PatientID));
  EXPECT_NE(tag(first, DCM_SeriesInstanceUID), source.series_uid);
  EXPECT_EQ(tag(first, DCM_SeriesInstanceUID), tag(written->back(), DCM_SeriesInstanceUID));
  EXPECT_NE(tag(first, DCM_SOPInstanceUID), tag(written->back(), DCM_SOPInstanceUID));
  EXPECT_EQ(tag(first, DCM_ImageType), "DERIVED\\SECONDARY\\AXIAL");
  EXPECT_NE(tag(first, DCM_SeriesDescription).find("[mip-stream]"), std::string::npos);
  EXPECT_NE(tag(first, DCM_DerivationDescription).find("mip slab 5 mm"), std::string::npos);
  EXPECT_EQ(tag(first, DCM_SliceThickness), "5");
  // First slab: source slices 0 and 1 (z -6.25 and -3.75), centred at -5.
  auto position = tag(first, DCM_ImagePositionPatient);
  EXPECT_EQ(position.substr(position.rfind('\\') + 1), "-5");
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(first.c_str()).good());
  DcmItem* item = nullptr;
  // The slab's two source slices are both referenced, once each.
  std::set<std::string> referenced;
  for (int i = 0; ff.getDataset()->findAndGetSequenceItem(DCM_SourceImageSequence, item, i).good();
       ++i) {
    OFString uid;
    item->findAndGetOFString(DCM_ReferencedSOPInstanceUID, uid);
    referenced.insert(uid.c_str());
  }
  EXPECT_EQ(referenced,
            (std::set<std::string>{source.sop_instance_uids[0], source.sop_instance_uids[1]}));
  ASSERT_TRUE(
      ff.getDataset()->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, item, 0).good());
  OFString series;
  item->findAndGetOFString(DCM_SeriesInstanceUID, series);
  EXPECT_EQ(std::string(series.c_str()), source.series_uid);
  // The voxels read back are the kernel's result.
  auto reread = load_series(*written);
  ASSERT_TRUE(reread);
  EXPECT_EQ(reread->series[0].image.voxels, image.voxels);
}

TEST(derived_series, positions_keep_every_digit_a_decimal_string_holds) {
  fixtures::temp_dir dir;
  auto files = synth_files(dir / "in", "CT", "explicit-le", 2);
  // Positions as scanners write them, each of the 16 characters a DS holds used.
  const char* z[] = {"-16.443114076738", "-13.943114076738"};
  for (std::size_t i = 0; i < files.size(); ++i) {
    DcmFileFormat file;
    ASSERT_TRUE(file.loadFile(files[i].c_str()).good());
    file.getDataset()->putAndInsertString(
        DCM_ImagePositionPatient,
        (std::string("-120.12345678901\\-98.765432109876\\") + z[i]).c_str());
    ASSERT_TRUE(file.saveFile(files[i].c_str(), EXS_LittleEndianExplicit).good());
  }
  auto loaded = load_series(files);
  ASSERT_TRUE(loaded) << loaded.error().message;
  derived_series_request request;
  request.source = &loaded->series[0];
  request.image = &loaded->series[0].image;
  request.stream = "copy";
  request.derivation = "copy";
  request.out_dir = dir / "out";
  auto written = write_derived_series(request);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(tag(written->front(), DCM_ImagePositionPatient),
            "-120.12345678901\\-98.765432109876\\-16.443114076738");
}

TEST(derived_series, every_kernel_output_passes_dciodvfy) {
  for (auto modality : {"CT", "MR"}) {
    fixtures::temp_dir dir;
    auto loaded = load_series(synth_files(dir / "in", modality));
    ASSERT_TRUE(loaded);
    auto& source = loaded->series[0];
    std::vector<std::pair<std::string, volume>> results{
        {"gaussian", gaussian(source.image, 1.0)},
        {"window", window(source.image, 40, 400)},
        {"resample", resample(source.image, *parse_kernel_step(
                                                R"({"kernel": "resample", "factor": 0.5})", "s"))}};
    for (auto& [name, image] : results) {
      derived_series_request request;
      request.source = &source;
      request.image = &image;
      request.stream = "test";
      request.derivation = name;
      request.out_dir = dir / name;
      auto written = write_derived_series(request);
      ASSERT_TRUE(written) << name;
      auto checked = fixtures::run({"dciodvfy", written->front().string()});
      EXPECT_EQ(checked.output.find("Error"), std::string::npos) << modality << " " << name << "\n"
                                                                 << checked.output;
    }
  }
}
