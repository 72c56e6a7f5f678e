// PNG previews of a series (pipeline/imaging/preview.hpp): the window
// function of PS3.3 C.11.2.1.2, MONOCHROME1, non-square pixels, and the
// choice of a window by name or numbers.

#include "pipeline/imaging/preview.hpp"

#include "pipeline/dicom/synth.hpp"

#include "tests/support/node.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>
#include <png.h>

#include <map>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

// A 2 x 3 image of the given values, one pixel 2 mm high and 1 mm wide.
fs::path small_image(const fs::path& file, const std::string& photometric,
                     const std::vector<Uint16>& values) {
  DcmFileFormat format;
  auto* ds = format.getDataset();
  char uid[100];
  ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid));
  ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4");
  ds->putAndInsertString(DCM_Modality, "OT");
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, photometric.c_str());
  ds->putAndInsertUint16(DCM_Rows, 2);
  ds->putAndInsertUint16(DCM_Columns, 3);
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  ds->putAndInsertString(DCM_PixelSpacing, "2\\1");
  ds->putAndInsertString(DCM_RescaleIntercept, "-100");
  ds->putAndInsertString(DCM_RescaleSlope, "2");
  ds->putAndInsertUint16Array(DCM_PixelData, values.data(), values.size());
  EXPECT_TRUE(format.saveFile(file.c_str(), EXS_LittleEndianExplicit).good());
  return file;
}

std::vector<std::uint8_t> decode(const std::string& png, unsigned& width, unsigned& height) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_memory(&image, png.data(), png.size()));
  image.format = PNG_FORMAT_GRAY;
  std::vector<std::uint8_t> pixels(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr));
  width = image.width;
  height = image.height;
  return pixels;
}

} // namespace

TEST(preview, the_window_maps_rescaled_values_and_pixels_keep_their_proportions) {
  fixtures::temp_dir dir;
  // Rescaled: 2 * stored - 100 = -100, 0, 50, 100, 150, 300.
  auto file = small_image(dir.path() / "a.dcm", "MONOCHROME2", {0, 50, 75, 100, 125, 200});
  // Centre 50, width 101: ((x - 49.5) / 100 + 0.5) * 255 from -0.5 to 99.5,
  // black below, white above.
  auto png = render_png(file, {"test", 50, 101}, 64);
  ASSERT_TRUE(png) << png.error().message;
  unsigned width = 0, height = 0;
  auto pixels = decode(*png, width, height);
  ASSERT_EQ(width, 3u);
  ASSERT_EQ(height, 4u) << "a pixel 2 mm high becomes two rows";
  std::vector<std::uint8_t> first_row{0, 1, 129};
  std::vector<std::uint8_t> second_row{255, 255, 255};
  for (unsigned x = 0; x < 3; ++x) {
    EXPECT_EQ(pixels[x], first_row[x]) << x;
    EXPECT_EQ(pixels[3 + x], first_row[x]) << x;
    EXPECT_EQ(pixels[6 + x], second_row[x]) << x;
    EXPECT_EQ(pixels[9 + x], second_row[x]) << x;
  }
  // MONOCHROME1: low values are bright.
  auto inverted = small_image(dir.path() / "b.dcm", "MONOCHROME1", {0, 50, 75, 100, 125, 200});
  auto inverted_png = render_png(inverted, {"test", 50, 101}, 64);
  ASSERT_TRUE(inverted_png);
  auto inverted_pixels = decode(*inverted_png, width, height);
  EXPECT_EQ(inverted_pixels[0], 255);
  EXPECT_EQ(inverted_pixels[2], 126);
  EXPECT_EQ(inverted_pixels[11], 0);
  // A smaller size keeps the proportions.
  auto small = render_png(file, {"test", 50, 101}, 2);
  ASSERT_TRUE(small);
  decode(*small, width, height);
  EXPECT_EQ(width, 2u);
  EXPECT_EQ(height, 2u);
}

TEST(preview, a_window_is_chosen_by_name_or_numbers_and_a_wrong_one_names_the_choices) {
  std::vector<named_window> windows{{"soft tissue", 40, 400}, {"lung", -600, 1500}};
  EXPECT_EQ(choose_window(windows, "")->name, "soft tissue");
  EXPECT_EQ(choose_window(windows, "lung")->center, -600);
  auto numbers = choose_window(windows, "-50.5,300");
  ASSERT_TRUE(numbers);
  EXPECT_EQ(numbers->center, -50.5);
  EXPECT_EQ(numbers->width, 300);
  for (auto wrong : {"bone", "40,0", "40,", "40,x", ",300", "40,300,2"}) {
    auto refused = choose_window(windows, wrong);
    ASSERT_FALSE(refused) << wrong;
    EXPECT_NE(refused.error().message.find("\"lung\""), std::string::npos)
        << refused.error().message;
  }
  EXPECT_FALSE(choose_window({}, ""));
}

TEST(preview, a_folder_s_series_are_indexed_with_windows_and_reasons) {
  fixtures::temp_dir dir;
  auto a = small_image(dir.path() / "a.dcm", "MONOCHROME2", {0, 50, 75, 100, 125, 200});
  auto series = index_series({a, dir.path() / "missing.dcm"});
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].series_uid, "1.2.3.4");
  EXPECT_EQ(series[0].rows, 2u);
  EXPECT_EQ(series[0].columns, 3u);
  ASSERT_EQ(series[0].windows.size(), 1u) << "no window of its own, not CT: the value range";
  EXPECT_EQ(series[0].windows[0].name, "value range");
  EXPECT_TRUE(series[0].not_shown.empty());
}

TEST(preview, compressed_series_look_the_same_as_uncompressed_ones) {
  fixtures::temp_dir dir;
  std::map<std::string, std::string> pictures;
  for (std::string syntax : {"explicit-le", "jpeg-ls", "jpeg-lossless", "rle"}) {
    synth_options options;
    options.out = dir / syntax;
    options.series = 1;
    options.instances = 3;
    options.rows = 24;
    options.cols = 20;
    options.modality = "MR";
    options.transfer_syntax = syntax;
    auto written = synthesize(options);
    ASSERT_TRUE(written) << written.error().message;
    auto series = index_series(written->files);
    ASSERT_EQ(series.size(), 1u) << syntax;
    ASSERT_TRUE(series[0].not_shown.empty()) << syntax << ": " << series[0].not_shown;
    ASSERT_EQ(series[0].files.size(), 3u);
    auto window = choose_window(series[0].windows, "");
    ASSERT_TRUE(window) << syntax;
    auto png = render_png(series[0].files[1], *window, 64);
    ASSERT_TRUE(png) << syntax << ": " << png.error().message;
    pictures[syntax] = *png;
  }
  for (auto& [syntax, png] : pictures)
    EXPECT_EQ(png, pictures["explicit-le"]) << syntax << " decodes to other pixels";
}
