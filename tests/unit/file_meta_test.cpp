#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/file_meta.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(file_meta, dcmtk_reads_what_we_write) {
  auto meta = encode_file_meta({"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", "1.2.840.10008.1.2.1",
                                "STORESCU", "SMOOTH", "dicom://127.0.0.1:4711"});
  ASSERT_EQ(meta.size() % 2, 0u);
  EXPECT_EQ(meta.substr(128, 4), "DICM");
  fixtures::temp_dir dir;
  // A minimal explicit VR little endian data set: (0020,000D) StudyInstanceUID.
  std::string dataset("\x20\x00\x0d\x00UI\x06\x00"
                      "1.2.3\0",
                      14);
  fixtures::write_file(dir / "x.dcm", meta + dataset);
  auto header = read_instance_header(dir / "x.dcm");
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
  EXPECT_EQ(header->sop_instance_uid, "1.2.3.4.5");
  EXPECT_EQ(header->transfer_syntax_uid, "1.2.840.10008.1.2.1");
  EXPECT_EQ(header->source_ae, "STORESCU");
  EXPECT_EQ(header->sending_ae, "STORESCU");
  EXPECT_EQ(header->receiving_ae, "SMOOTH");
  EXPECT_EQ(header->sending_address, "dicom://127.0.0.1:4711");
  EXPECT_EQ(header->study_uid, "1.2.3");
  EXPECT_EQ(host_of_presentation_address(header->sending_address), "127.0.0.1");
  EXPECT_EQ(fixtures::dataset_bytes(dir / "x.dcm"), dataset);
  // dcmdump, a program nobody here wrote, agrees.
  auto dump = fixtures::run({"dcmdump", (dir / "x.dcm").string()});
  EXPECT_EQ(dump.exit_code, 0) << dump.output;
  EXPECT_NE(dump.output.find("(0002,0018) AE [SMOOTH]"), std::string::npos) << dump.output;
}

TEST(file_meta, presentation_addresses) {
  EXPECT_EQ(host_of_presentation_address("dicom://10.0.0.5:104"), "10.0.0.5");
  EXPECT_EQ(host_of_presentation_address("dicom://[::1]:104"), "::1");
  EXPECT_EQ(host_of_presentation_address("10.0.0.5"), "10.0.0.5");
}

TEST(dicom_file, the_malformed_directory_record_does_not_crash) {
  auto sample = fixtures::source_dir() / "tests" / "data" / "dirrec_crash.dcm";
  ASSERT_TRUE(std::filesystem::exists(sample));
  auto header = read_instance_header(sample);
  EXPECT_FALSE(header);
  EXPECT_EQ(header.error().code, ec::invalid_dataset);
}

TEST(dicom_file, truncated_files_are_reported) {
  auto header = read_instance_header(fixtures::pydicom_test_files() / "MR_truncated.dcm");
  ASSERT_FALSE(header);
  EXPECT_NE(header.error().message.find("MR_truncated.dcm"), std::string::npos);
}
