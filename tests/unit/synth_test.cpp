#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/synth.hpp"

#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <gtest/gtest.h>

#include <set>

using namespace dcmstreams;

namespace {

std::string tag(const std::filesystem::path& file, const DcmTagKey& key) {
  DcmFileFormat ff;
  EXPECT_TRUE(ff.loadFile(file.c_str()).good());
  OFString value;
  ff.getDataset()->findAndGetOFStringArray(key, value);
  return value.c_str();
}

} // namespace

TEST(synth, writes_studies_series_and_slices_with_fresh_uids) {
  fixtures::temp_dir dir;
  synth_options options;
  options.out = dir.path();
  options.studies = 2;
  options.series = 3;
  options.instances = 4;
  options.rows = 32;
  options.cols = 24;
  auto first = synthesize(options);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->files.size(), 24u);
  EXPECT_EQ(first->study_uids.size(), 2u);
  std::set<std::string> series, instances;
  for (auto& file : first->files) {
    auto header = read_instance_header(file);
    ASSERT_TRUE(header);
    series.insert(header->series_uid);
    instances.insert(header->sop_instance_uid);
  }
  EXPECT_EQ(series.size(), 6u);
  EXPECT_EQ(instances.size(), 24u);
  fixtures::temp_dir again_dir;
  options.out = again_dir.path();
  auto second = synthesize(options);
  ASSERT_TRUE(second);
  EXPECT_NE(first->study_uids, second->study_uids) << "every run has fresh UIDs";
}

TEST(synth, geometry_is_consistent) {
  fixtures::temp_dir dir;
  synth_options options;
  options.out = dir.path();
  options.series = 1;
  options.instances = 3;
  options.rows = 100;
  options.cols = 50;
  options.modality = "MR";
  auto written = synthesize(options);
  ASSERT_TRUE(written);
  // 350 mm over the larger side, 5 mm slices for MR, centred on the origin.
  EXPECT_EQ(tag(written->files[0], DCM_PixelSpacing), "3.5\\3.5");
  EXPECT_EQ(tag(written->files[0], DCM_SliceThickness), "5");
  EXPECT_EQ(tag(written->files[0], DCM_ImageOrientationPatient), "1\\0\\0\\0\\1\\0");
  EXPECT_EQ(tag(written->files[0], DCM_ImagePositionPatient), "-85.75\\-173.25\\-5");
  EXPECT_EQ(tag(written->files[2], DCM_ImagePositionPatient), "-85.75\\-173.25\\5");
  EXPECT_EQ(tag(written->files[1], DCM_Rows), "100");
  EXPECT_EQ(tag(written->files[1], DCM_Columns), "50");
  EXPECT_EQ(tag(written->files[1], DCM_BitsAllocated), "16");
  EXPECT_EQ(tag(written->files[1], DCM_Modality), "MR");
}

TEST(synth, every_transfer_syntax_writes_readable_files) {
  for (auto name : {"explicit-le", "implicit-le", "deflated", "jpeg-lossless", "jpeg-ls", "rle"}) {
    fixtures::temp_dir dir;
    synth_options options;
    options.out = dir.path();
    options.series = 1;
    options.instances = 1;
    options.rows = options.cols = 32;
    options.transfer_syntax = name;
    auto written = synthesize(options);
    ASSERT_TRUE(written) << name << ": " << written.error().message;
    auto header = read_instance_header(written->files.at(0));
    ASSERT_TRUE(header) << name;
  }
}

TEST(synth, output_passes_dciodvfy) {
  for (auto modality : {"CT", "MR"}) {
    fixtures::temp_dir dir;
    synth_options options;
    options.out = dir.path();
    options.series = 1;
    options.instances = 2;
    options.rows = options.cols = 32;
    options.modality = modality;
    auto written = synthesize(options);
    ASSERT_TRUE(written);
    auto checked = fixtures::run({"dciodvfy", written->files[0].string()});
    EXPECT_EQ(checked.output.find("Error"), std::string::npos) << modality << "\n"
                                                               << checked.output;
    EXPECT_EQ(checked.output.find("Warning"), std::string::npos) << modality << "\n"
                                                                 << checked.output;
  }
}

TEST(synth, bad_options_name_the_option) {
  synth_options options;
  options.out = "/tmp/x";
  options.modality = "PET";
  auto problem = check_synth_options(options);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->message.find("--modality must be CT or MR"), std::string::npos);
  options.modality = "CT";
  options.transfer_syntax = "jpeg2000";
  problem = check_synth_options(options);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->message.find("--transfer-syntax must be one of explicit-le"),
            std::string::npos);
}
