// The node against real DICOM peers on loopback: DCMTK's storescu, dcmsend,
// echoscu and storescp (as the bit-preserving reference), and a raw client
// for data sets DCMTK's senders refuse to send.

#include "pipeline/dicom/dicom_file.hpp"

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_scu.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string port_text(std::uint16_t port) {
  return std::to_string(port);
}

// A storescp that keeps every data set bit for bit (+B) and accepts every
// transfer syntax (+xa): the reference for "stored exactly as sent".
class reference_storescp {
public:
  explicit reference_storescp(const fs::path& root) : dir_(root / "reference"), port_(free_port()) {
    fs::create_directories(dir_);
    process_ = std::make_unique<process>(
        process_options{{"storescp", "+B", "+xa", "-od", dir_.string(), port_text(port_)},
                        {{"TCP_NODELAY", "1"}},
                        {},
                        root / "storescp.log"});
    bool up = eventually(
        [&] {
          return run({"echoscu", "127.0.0.1", port_text(port_)}, 10s).exit_code == 0;
        },
        10s);
    if (!up)
      throw std::runtime_error("storescp did not start: " + process_->output());
  }
  std::uint16_t port() const { return port_; }
  // Stored files by SOP Instance UID (storescp names them <modality>.<uid>).
  std::map<std::string, fs::path> files() const {
    std::map<std::string, fs::path> by_uid;
    for (auto& file : files_under(dir_)) {
      auto name = file.filename().string();
      by_uid[name.substr(name.find('.') + 1)] = file;
    }
    return by_uid;
  }

private:
  fs::path dir_;
  std::uint16_t port_;
  std::unique_ptr<process> process_;
};

class ingest : public ::testing::Test {
protected:
  void SetUp() override { start_node({}); }

  void start_node(node_options options) {
    node = std::make_unique<test_node>(root.path(), options);
    write_stream(node->streams_dir(), "test", "TESTAE");
    node->start();
  }

  std::string port() const { return port_text(node->port()); }

  // Waits until `count` jobs exist and returns them.
  std::vector<fs::path> wait_for_jobs(std::size_t count, std::chrono::milliseconds timeout = 20s) {
    eventually([&] { return node->job_dirs().size() >= count; }, timeout);
    return node->job_dirs();
  }

  // Every instance the node stored for `reference` has the same data set bytes.
  void expect_same_datasets(const std::map<std::string, fs::path>& reference,
                            const fs::path& job_dir) {
    auto input = test_node::input_files(job_dir);
    ASSERT_EQ(input.size(), reference.size());
    for (auto& [uid, file] : reference) {
      auto stored = job_dir / "INPUT" / (uid + ".dcm");
      ASSERT_TRUE(fs::exists(stored)) << uid;
      EXPECT_TRUE(dataset_bytes(stored) == dataset_bytes(file))
          << "data set of " << uid << " differs from what storescp +B stored";
    }
  }

  temp_dir root;
  temp_dir scratch;
  std::unique_ptr<test_node> node;
};

} // namespace

TEST_F(ingest, storescu_study_of_200_arrives_complete_and_bit_exact) {
  auto study = synth_study(scratch / "study", 200, 64);
  reference_storescp reference{scratch.path()};
  auto to_reference = run({"storescu", "-aec", "REF", "+sd", "+r", "127.0.0.1",
                           port_text(reference.port()), study.string()});
  ASSERT_EQ(to_reference.exit_code, 0) << to_reference.output;
  auto to_node =
      run({"storescu", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1", port(), study.string()});
  ASSERT_EQ(to_node.exit_code, 0) << to_node.output;
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u) << node->log();
  expect_same_datasets(reference.files(), jobs[0]);
  // Nothing stays pending: the instances moved on to the store once the job
  // was committed.
  EXPECT_TRUE(eventually([&] { return files_under(node->data_dir() / "store").size() == 200; }, 5s))
      << files_under(node->data_dir() / "store").size();
  EXPECT_TRUE(node->incoming_files().empty());
  EXPECT_EQ(node->pending_instances(), 0u);
  // The file meta header says who sent it, to which AE and from where.
  auto header = read_file_meta(test_node::input_files(jobs[0]).front());
  ASSERT_TRUE(header);
  EXPECT_EQ(header->sending_ae, "STORESCU");
  EXPECT_EQ(header->receiving_ae, "TESTAE");
  EXPECT_EQ(host_of_presentation_address(header->sending_address), "127.0.0.1");
  auto info = read_file(jobs[0] / "info.json");
  EXPECT_NE(info.find("\"instances\": 200"), std::string::npos) << info;
  EXPECT_NE(info.find("\"AETitleCaller\": \"STORESCU\""), std::string::npos);
}

TEST_F(ingest, data_sets_larger_than_a_journal_record_arrive_as_files_bit_exact) {
  // 800 x 800 x 16 bit: 1.28 MB each, above the 1 MiB a journal record takes;
  // sent over two associations, next to the pools of ready files of both the
  // listener and the job creation.
  auto study = synth_study(scratch / "large", 6, 800);
  auto sent = run({dcmstreams_binary().string(), "send", "--aec", "TESTAE", "--associations", "2",
                   "127.0.0.1", port(), study.string()});
  ASSERT_EQ(sent.exit_code, 0) << sent.output << node->log();
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u) << node->log();
  std::map<std::string, fs::path> by_uid;
  for (auto& file : files_under(study))
    by_uid[sop_instance_uid(file)] = file;
  auto input = test_node::input_files(jobs[0]);
  ASSERT_EQ(input.size(), 6u);
  for (auto& file : input) {
    EXPECT_GT(fs::file_size(file), std::uintmax_t{1} << 20);
    EXPECT_TRUE(dataset_bytes(file) == dataset_bytes(by_uid[file.stem().string()])) << file;
  }
  EXPECT_TRUE(eventually([&] { return node->incoming_files().empty(); }, 5s));
}

TEST_F(ingest, dcmsend_study_of_200_arrives_complete_and_bit_exact) {
  auto study = synth_study(scratch / "study", 200, 64, 2);
  reference_storescp reference{scratch.path()};
  ASSERT_EQ(run({"dcmsend", "-aec", "REF", "+sd", "+r", "127.0.0.1", port_text(reference.port()),
                 study.string()})
                .exit_code,
            0);
  auto sent = run({"dcmsend", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1", port(), study.string()});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u) << node->log();
  expect_same_datasets(reference.files(), jobs[0]);
}

TEST_F(ingest, echo_succeeds_and_an_unknown_called_ae_is_refused) {
  auto echo = run({"echoscu", "-aec", "TESTAE", "127.0.0.1", port()});
  EXPECT_EQ(echo.exit_code, 0) << echo.output;
  auto study = synth_study(scratch / "study", 2, 16);
  auto refused =
      run({"storescu", "-aec", "NOSUCHAE", "+sd", "+r", "127.0.0.1", port(), study.string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("Called AE Title Not Recognized"), std::string::npos)
      << refused.output;
  EXPECT_TRUE(node->wait_for_log("called AE title \"NOSUCHAE\" not recognized", 5s)) << node->log();
  EXPECT_EQ(node->pending_instances(), 0u);
  EXPECT_TRUE(node->incoming_files().empty());
}

namespace {

// Writes a copy of `source` with another SOP class and a fresh SOP Instance
// UID, keeping its transfer syntax and pixel data.
fs::path with_sop_class(const fs::path& source, const char* sop_class, const fs::path& target) {
  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(source.c_str()).good());
  char uid[100];
  file.getDataset()->putAndInsertString(DCM_SOPClassUID, sop_class);
  file.getDataset()->putAndInsertString(DCM_SOPInstanceUID,
                                        dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  fs::create_directories(target.parent_path());
  auto xfer = file.getDataset()->getOriginalXfer();
  EXPECT_TRUE(file.saveFile(target.c_str(), xfer).good());
  return target;
}

} // namespace

TEST_F(ingest, compressed_ultrasound_angiography_multiframe_and_ecg_files_are_stored_unchanged) {
  auto pd = pydicom_test_files();
  auto set = scratch / "set";
  fs::create_directories(set);
  for (auto name : {"JPEG-lossy.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm",
                    "693_J2KI.dcm", "SC_rgb_rle_2frame.dcm", "image_dfl.dcm", "rtdose.dcm",
                    "waveform_ecg.dcm", "liver_1frame.dcm"})
    fs::copy_file(pd / name, set / name);
  // Classes beyond the 128 contexts of a DcmSCPConfig profile.
  with_sop_class(pd / "MR_small.dcm", UID_UltrasoundImageStorage, set / "us.dcm");
  with_sop_class(pd / "SC_rgb_rle_2frame.dcm", UID_UltrasoundMultiframeImageStorage,
                 set / "us_multiframe.dcm");
  with_sop_class(pd / "SC_rgb_rle_2frame.dcm", UID_XRayAngiographicImageStorage,
                 set / "xa_multiframe.dcm");
  reference_storescp reference{scratch.path()};
  auto to_reference = run(
      {"dcmsend", "-aec", "REF", "+sd", "127.0.0.1", port_text(reference.port()), set.string()});
  ASSERT_EQ(to_reference.exit_code, 0) << to_reference.output;
  ASSERT_EQ(reference.files().size(), 12u);
  auto sent = run({"dcmsend", "-aec", "TESTAE", "+sd", "127.0.0.1", port(), set.string()});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  // The files belong to several studies: one job each.
  std::set<std::string> studies;
  for (auto& [uid, file] : reference.files())
    studies.insert(read_instance_header(file)->study_uid);
  auto jobs = wait_for_jobs(studies.size());
  ASSERT_EQ(jobs.size(), studies.size()) << node->log();
  std::size_t compared = 0;
  for (auto& job : jobs)
    for (auto& stored : test_node::input_files(job)) {
      auto uid = stored.stem().string();
      auto reference_file = reference.files().at(uid);
      EXPECT_TRUE(dataset_bytes(stored) == dataset_bytes(reference_file)) << uid;
      EXPECT_EQ(read_file_meta(stored)->transfer_syntax_uid,
                read_file_meta(reference_file)->transfer_syntax_uid)
          << uid;
      ++compared;
    }
  EXPECT_EQ(compared, 12u);
}

TEST_F(ingest, malformed_truncated_and_meta_less_data_sets_are_refused_and_the_node_goes_on) {
  auto pd = pydicom_test_files();
  std::string why;
  const std::string mr = UID_MRImageStorage;
  const std::string explicit_le = UID_LittleEndianExplicitTransferSyntax;
  const std::string implicit_le = UID_LittleEndianImplicitTransferSyntax;
  auto assoc = raw_association::open(
      "127.0.0.1", node->port(), "FUZZER", "TESTAE",
      {{mr, explicit_le}, {mr, implicit_le}, {UID_SecondaryCaptureImageStorage, explicit_le}},
      &why);
  ASSERT_TRUE(assoc) << why;
  ASSERT_TRUE(assoc->accepted(0) && assoc->accepted(1) && assoc->accepted(2));

  // Debian's DCMTK throws while parsing this one (stack notes §12).
  auto crash = dataset_bytes(source_dir() / "tests" / "data" / "dirrec_crash.dcm");
  auto status = assoc->store(2, UID_SecondaryCaptureImageStorage, "1.2.3.4.5.6.7.8.9", crash);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0xC000);
  // Pixel data longer than the data set.
  auto truncated = dataset_bytes(pd / "MR_truncated.dcm");
  status = assoc->store(0, mr, "1.2.3.4.5.6.7.8.10", truncated);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0xC000);
  // A file without meta header is a data set in implicit VR; its bytes are
  // fine as a data set, but a file's preamble sent as a data set is not.
  auto no_meta = std::string(128, '\0') + "DICM" + read_file(pd / "no_meta.dcm");
  no_meta.resize(no_meta.size() + no_meta.size() % 2, '\0'); // PDVs have even lengths
  status = assoc->store(1, mr, "1.2.3.4.5.6.7.8.11", no_meta);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0x0000);
  // A data set without a Study Instance UID cannot be grouped.
  std::string no_study("\x08\x00\x18\x00UI\x06\x00"
                       "1.2.3\0",
                       14);
  status = assoc->store(0, mr, "1.2.3", no_study);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0xA900);
  // The same association still stores a good instance.
  auto good = dataset_bytes(pd / "MR_small.dcm");
  status = assoc->store(0, mr, sop_instance_uid(pd / "MR_small.dcm"), good);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0x0000);
  EXPECT_TRUE(assoc->release());

  EXPECT_TRUE(node->running());
  EXPECT_EQ(run({"echoscu", "-aec", "TESTAE", "127.0.0.1", port()}).exit_code, 0);
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(test_node::input_files(jobs[0]).size(), 1u);
  EXPECT_TRUE(node->partial_files().empty()) << "refused instances leave no files";
  auto log = node->log();
  EXPECT_NE(log.find("cannot parse the data set, not a readable DICOM file: DCMTK threw"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("StudyInstanceUID is missing"), std::string::npos) << log;
  // DCMTK's own complaints are lines of the node's log, not bare "E: ..." ones.
  EXPECT_NE(log.find(" dcmtk: dcmdata: DcmElement: PixelData (7fe0,0010) larger"),
            std::string::npos)
      << log;
  std::istringstream lines{log};
  for (std::string line; std::getline(lines, line);)
    EXPECT_FALSE(line.rfind("E: ", 0) == 0 || line.rfind("W: ", 0) == 0) << line;
}

TEST_F(ingest, the_same_instance_sent_again_replaces_the_earlier_copy) {
  auto study = synth_study(scratch / "study", 3, 16);
  for (int round = 0; round < 2; ++round)
    ASSERT_EQ(run({"storescu", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1", port(), study.string()})
                  .exit_code,
              0);
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(test_node::input_files(jobs[0]).size(), 3u);
  EXPECT_TRUE(node->wait_for_log("the new copy replaces the earlier one", 1s));
}

TEST_F(ingest, two_senders_of_the_same_uids_each_get_a_job_with_exactly_what_they_sent) {
  // The same Study and SOP Instance UIDs, different patients: two modalities
  // that reuse UIDs, or one study anonymised two ways.
  auto study = synth_study(scratch / "a", 1, 16);
  auto file_a = files_under(study).front();
  auto file_b = scratch / "b" / file_a.filename();
  fs::create_directories(file_b.parent_path());
  fs::copy_file(file_a, file_b);
  ASSERT_EQ(run({"dcmodify", "-nb", "-m", "(0010,0010)=SENDER^A", file_a.string()}).exit_code, 0);
  ASSERT_EQ(run({"dcmodify", "-nb", "-m", "(0010,0010)=SENDER^B", file_b.string()}).exit_code, 0);
  auto sent_a =
      run({"storescu", "-aet", "SENDER_A", "-aec", "TESTAE", "127.0.0.1", port(), file_a.string()});
  ASSERT_EQ(sent_a.exit_code, 0) << sent_a.output;
  auto sent_b =
      run({"dcmsend", "-aet", "SENDER_B", "-aec", "TESTAE", "127.0.0.1", port(), file_b.string()});
  ASSERT_EQ(sent_b.exit_code, 0) << sent_b.output;

  auto jobs = wait_for_jobs(2);
  ASSERT_EQ(jobs.size(), 2u) << node->log();
  std::map<std::string, fs::path> input_by_caller;
  for (auto& job : jobs) {
    auto input = test_node::input_files(job);
    ASSERT_EQ(input.size(), 1u) << job;
    input_by_caller[test_node::job_info(job, "AETitleCaller")] = input.front();
  }
  ASSERT_EQ(input_by_caller.size(), 2u);
  for (auto& [caller, file] : input_by_caller) {
    auto sent = caller == "SENDER_A" ? file_a : file_b;
    EXPECT_TRUE(dataset_bytes(file) == dataset_bytes(sent))
        << caller << "'s job holds another sender's data set";
  }
  EXPECT_FALSE(fs::equivalent(input_by_caller["SENDER_A"], input_by_caller["SENDER_B"]))
      << "both jobs link one file";
  EXPECT_TRUE(eventually([&] { return node->incoming_files().empty(); }, 5s));
}

TEST_F(ingest, our_own_sender_with_four_associations_delivers_everything) {
  auto study = synth_study(scratch / "study", 100, 32, 2);
  auto sent = run({dcmstreams_binary().string(), "send", "--aec", "TESTAE", "--associations", "4",
                   "127.0.0.1", port(), study.string()});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  EXPECT_NE(sent.output.find("sent 200 of 200 files"), std::string::npos) << sent.output;
  EXPECT_NE(sent.output.find("4 associations"), std::string::npos) << sent.output;
  auto jobs = wait_for_jobs(1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(test_node::input_files(jobs[0]).size(), 200u);
}

TEST_F(ingest, send_reports_failures_and_exits_non_zero) {
  auto study = synth_study(scratch / "study", 2, 16);
  auto refused = run({dcmstreams_binary().string(), "send", "--aec", "NOSUCHAE", "127.0.0.1",
                      port(), study.string()});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("failed: 2"), std::string::npos) << refused.output;
  auto unreachable = run({dcmstreams_binary().string(), "send", "127.0.0.1",
                          std::to_string(free_port()), study.string()});
  EXPECT_EQ(unreachable.exit_code, 1) << unreachable.output;
  auto usage = run({dcmstreams_binary().string(), "send", "127.0.0.1", "notaport", "x"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.output.find("PORT must be a number"), std::string::npos) << usage.output;
}

TEST_F(ingest, a_stream_added_while_running_is_accepted_and_a_removed_one_refused) {
  EXPECT_NE(run({"echoscu", "-aec", "LATE", "127.0.0.1", port()}).exit_code, 0);
  write_stream(node->streams_dir(), "late", "LATE");
  EXPECT_TRUE(eventually(
      [&] {
        return run({"echoscu", "-aec", "LATE", "127.0.0.1", port()}).exit_code == 0;
      },
      10s))
      << node->log();
  fs::remove_all(node->streams_dir() / "late");
  EXPECT_TRUE(eventually(
      [&] {
        return run({"echoscu", "-aec", "LATE", "127.0.0.1", port()}).exit_code != 0;
      },
      10s));
  // A second folder claiming TESTAE makes the title ambiguous: both are skipped.
  write_stream(node->streams_dir(), "copycat", "TESTAE");
  EXPECT_TRUE(node->wait_for_log("AE title \"TESTAE\" is claimed by", 10s)) << node->log();
  auto log = node->log();
  EXPECT_NE(log.find((node->streams_dir() / "copycat").string()), std::string::npos);
  EXPECT_NE(log.find((node->streams_dir() / "test").string()), std::string::npos);
  EXPECT_NE(run({"echoscu", "-aec", "TESTAE", "127.0.0.1", port()}).exit_code, 0);
}

TEST(ingest_limits, below_the_reserve_stores_are_refused_with_a700_and_the_node_goes_on) {
  temp_dir root, scratch;
  node_options options;
  options.reserve_free_mb = std::uint64_t{1} << 40; // more than any disk here
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "test", "TESTAE");
  node.start();
  auto study = synth_study(scratch / "study", 2, 16);
  auto sent = run({"storescu", "-v", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()});
  EXPECT_NE(sent.output.find("Refused: OutOfResources"), std::string::npos) << sent.output;
  EXPECT_EQ(node.pending_instances(), 0u);
  EXPECT_TRUE(node.incoming_files().empty());
  EXPECT_TRUE(node.running());
  EXPECT_EQ(run({"echoscu", "-aec", "TESTAE", "127.0.0.1", std::to_string(node.port())}).exit_code,
            0);
  EXPECT_NE(node.log().find("free disk space below storage.reserve_free_mb"), std::string::npos);
}

TEST(ingest_limits, only_allowed_callers_get_in) {
  temp_dir root;
  node_options options;
  options.allowed_callers_json = R"(["GOOD"])";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "test", "TESTAE");
  node.start();
  auto port = std::to_string(node.port());
  auto bad = run({"echoscu", "-aet", "BAD", "-aec", "TESTAE", "127.0.0.1", port});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("Calling AE Title Not Recognized"), std::string::npos) << bad.output;
  EXPECT_EQ(run({"echoscu", "-aet", "GOOD", "-aec", "TESTAE", "127.0.0.1", port}).exit_code, 0);
}

TEST(ingest_limits, associations_beyond_the_limit_are_refused_until_one_ends) {
  temp_dir root;
  node_options options;
  options.max_associations = 1;
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "test", "TESTAE");
  node.start();
  auto port = std::to_string(node.port());
  std::string why;
  auto held = raw_association::open(
      "127.0.0.1", node.port(), "HOLDER", "TESTAE",
      {{UID_VerificationSOPClass, UID_LittleEndianImplicitTransferSyntax}}, &why);
  ASSERT_TRUE(held) << why;
  auto busy = run({"echoscu", "-aec", "TESTAE", "127.0.0.1", port});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.output.find("Local Limit Exceeded"), std::string::npos) << busy.output;
  EXPECT_EQ(held->echo(0).value_or(0xffff), 0x0000);
  EXPECT_TRUE(held->release());
  EXPECT_TRUE(eventually(
      [&] {
        return run({"echoscu", "-aec", "TESTAE", "127.0.0.1", port}).exit_code == 0;
      },
      5s));
}

TEST(ingest_durability, kill_9_during_a_send_keeps_every_stored_instance_and_completes_the_study) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "test", "TESTAE");
  node.start();
  auto study = synth_study(scratch / "study", 200, 512);
  auto sender_log = scratch / "storescu.log";
  process sender{{{"storescu", "-v", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()},
                  {{"TCP_NODELAY", "1"}},
                  {},
                  sender_log}};
  // What the sender was told is stored: the node must keep every one of them.
  auto acknowledged = [&] {
    auto log = read_file(sender_log);
    std::size_t count = 0;
    for (auto at = log.find("Received Store Response (Success)"); at != std::string::npos;
         at = log.find("Received Store Response (Success)", at + 1))
      ++count;
    return count;
  };
  ASSERT_TRUE(eventually([&] { return acknowledged() >= 40; }, 60s)) << read_file(sender_log);
  node.kill();
  sender.wait(30s);
  auto stored = acknowledged();
  ASSERT_LT(stored, 200u) << "the kill came too late to test anything";

  node.start();
  EXPECT_TRUE(node.wait_for_log("rebuilding pending studies from", 5s)) << node.log();
  ASSERT_TRUE(eventually([&] { return node.job_dirs().size() == 1; }, 20s)) << node.log();
  // Every acknowledged instance, and at most the one whose answer the kill
  // cut off, byte for byte as sent.
  auto input = test_node::input_files(node.job_dirs()[0]);
  EXPECT_GE(input.size(), stored);
  EXPECT_LE(input.size(), stored + 1);
  std::map<std::string, fs::path> sent;
  for (auto& file : files_under(study))
    sent[sop_instance_uid(file)] = file;
  for (auto& file : input) {
    auto uid = file.stem().string();
    ASSERT_TRUE(sent.count(uid)) << uid;
    EXPECT_TRUE(dataset_bytes(file) == dataset_bytes(sent[uid])) << uid << " differs";
  }
  EXPECT_TRUE(node.partial_files().empty());
}

TEST(ingest_durability, kill_9_while_a_study_becomes_a_job_leaves_exactly_one_job_with_all_of_it) {
  // Three rounds: the kill lands at another step of the creation each time
  // (writing the journal's records out, syncing, committing, or after).
  for (int round = 0; round < 3; ++round) {
    temp_dir root, scratch;
    test_node node{root.path()};
    write_stream(node.streams_dir(), "test", "TESTAE");
    node.start();
    auto study = synth_study(scratch / "study", 400, 64);
    ASSERT_EQ(run({"storescu", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()})
                  .exit_code,
              0);
    ASSERT_TRUE(node.wait_for_log(" is complete (", 10s)) << node.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(40 * round));
    node.kill();

    node.start();
    ASSERT_TRUE(eventually(
        [&] { return node.job_dirs().size() == 1 && node.pending_instances() == 0; }, 20s))
        << node.log();
    std::this_thread::sleep_for(1s); // a second job would show up after the quiet period
    auto log = node.log();
    std::cout << "round " << round << ": the restart "
              << (contains(log, "finished creating job") ? "finished the interrupted creation"
                  : contains(log, "undid the interrupted creation")
                      ? "undid the interrupted creation"
                      : "found the creation done or not begun")
              << "\n";
    auto jobs = node.job_dirs();
    ASSERT_EQ(jobs.size(), 1u) << node.log();
    std::map<std::string, fs::path> sent;
    for (auto& file : files_under(study))
      sent[sop_instance_uid(file)] = file;
    auto input = test_node::input_files(jobs[0]);
    ASSERT_EQ(input.size(), sent.size()) << node.log();
    for (auto& file : input)
      EXPECT_TRUE(dataset_bytes(file) == dataset_bytes(sent[file.stem().string()]))
          << file << " differs from what was sent";
    EXPECT_TRUE(eventually([&] { return node.incoming_files().empty(); }, 5s));
    auto metrics = http_get(node.web_port(), "/metrics").body;
    EXPECT_NE(metrics.find("dcmstreams_journal_live_records 0"), std::string::npos)
        << "every journal record is released once the job is queued";
  }
}

TEST(ingest_durability, every_sync_mode_stores_the_study) {
  for (auto mode : {"instance", "association", "none"}) {
    temp_dir root, scratch;
    node_options options;
    options.sync = mode;
    test_node node{root.path(), options};
    write_stream(node.streams_dir(), "test", "TESTAE");
    node.start();
    auto study = synth_study(scratch / "study", 20, 32);
    ASSERT_EQ(run({"storescu", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()})
                  .exit_code,
              0);
    ASSERT_TRUE(eventually([&] { return node.job_dirs().size() == 1; }, 20s)) << mode;
    EXPECT_EQ(test_node::input_files(node.job_dirs()[0]).size(), 20u) << mode;
    EXPECT_NE(node.log().find(std::string("sync ") + mode), std::string::npos);
  }
}
