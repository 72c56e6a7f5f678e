// Results leaving the node by the routing rules, to real peers on loopback:
// Orthanc as the PACS, storescp, and another dcmstreams node.

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/jobs/database.hpp"

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <thread>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int send(const test_node& node, const std::string& ae, const fs::path& study) {
  return run({"dcmsend", "-aec", ae, "+sd", "+r", "127.0.0.1", std::to_string(node.port()),
              study.string()})
      .exit_code;
}

std::string destination(const std::string& ae, std::uint16_t port) {
  return R"({"IP": "127.0.0.1", "PORT": )" + std::to_string(port) + R"(, "AETitleTo": ")" + ae +
         R"("})";
}

// Retries every half second, doubling up to 4 s: quick enough for tests.
const std::string fast_retries =
    R"("sending": {"retry_initial_s": 0.5, "retry_factor": 2, "retry_max_s": 4, "max_attempts": 12})";

std::string transfer_syntax_of(const fs::path& file) {
  auto meta = read_file_meta(file);
  return meta ? meta->transfer_syntax_uid : "";
}

/// Starts `target` (stream TARGET) and a node whose rule sends INPUT there,
/// and sends that node a study of 150 instances of 512 KB.
std::unique_ptr<test_node> send_150_instances_to_another_node(test_node& target,
                                                              const temp_dir& root,
                                                              const temp_dir& scratch,
                                                              node_options options) {
  write_stream(target.streams_dir(), "in", "TARGET");
  target.start();
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("TARGET", target.port()) + R"(}]}]})";
  auto node = std::make_unique<test_node>(root.path(), options);
  write_stream(node->streams_dir(), "copy", "COPY");
  node->start();
  EXPECT_EQ(send(*node, "COPY", synth_study(scratch / "s", 150, 512)), 0);
  return node;
}

} // namespace

TEST(routing, derived_series_and_input_reach_orthanc_with_the_right_tags) {
  temp_dir root, scratch;
  orthanc_peer pacs{scratch.path(), "PACS"};
  node_options options;
  options.extra_config = fast_retries;
  options.routing_json = R"({"routing": [
    {"name": "smoothed to the PACS", "AETitleIn": "^SMOOTH$",
     "send": [{"success": )" +
                         destination("PACS", pacs.dicom_port()) + R"(}]},
    {"name": "originals of COPY", "AETitleIn": "^COPY$", "RouteDirectory": "INPUT",
     "send": [{".*": )" + destination("PACS", pacs.dicom_port()) +
                         R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "smooth", "SMOOTH",
               R"("pipeline": [{"kernel": "gaussian", "sigma_mm": 1}])");
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  auto smooth_study = synth_study(scratch / "a", 6, 32);
  auto copy_study = synth_study(scratch / "b", 4, 32);
  ASSERT_EQ(send(node, "SMOOTH", smooth_study), 0);
  ASSERT_EQ(send(node, "COPY", copy_study), 0);
  ASSERT_TRUE(all_sends(node, 2, "done", 60s)) << node.log();
  ASSERT_TRUE(eventually([&] { return pacs.instances().size() == 10; }, 20s))
      << pacs.instances().size() << " instances in Orthanc";
  std::set<std::string> derived, originals;
  std::set<std::string> copy_uids;
  for (auto& file : files_under(copy_study))
    copy_uids.insert(sop_instance_uid(file));
  for (auto& id : pacs.instances()) {
    auto tags = pacs.tags(id);
    if (copy_uids.count(tags["SOPInstanceUID"]))
      originals.insert(tags["SOPInstanceUID"]);
    else {
      EXPECT_NE(tags["SeriesDescription"].find("[smooth]"), std::string::npos)
          << tags["SeriesDescription"];
      EXPECT_EQ(tags["ImageType"].rfind("DERIVED\\SECONDARY", 0), 0u) << tags["ImageType"];
      derived.insert(tags["SOPInstanceUID"]);
    }
  }
  EXPECT_EQ(derived.size(), 6u) << "exactly the derived series";
  EXPECT_EQ(originals.size(), 4u) << "exactly the study as received";
}

TEST(routing, one_rule_with_two_destinations_delivers_everything_to_both) {
  temp_dir root, scratch;
  storescp_peer first{scratch.path()}, second{scratch.path()};
  node_options options;
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{"success": )" +
                         destination("ONE", first.port()) + R"(}, {"success": )" +
                         destination("TWO", second.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 25, 32, 2)), 0);
  ASSERT_TRUE(all_sends(node, 2, "done", 60s)) << node.log();
  EXPECT_EQ(first.files().size(), 50u);
  EXPECT_EQ(second.files().size(), 50u);
}

TEST(routing, a_destination_that_comes_up_late_gets_everything_after_retries) {
  temp_dir root, scratch;
  auto port = free_port();
  node_options options;
  options.extra_config = fast_retries;
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("LATE", port) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 10, 32)), 0);
  ASSERT_TRUE(eventually(
      [&] {
        auto tasks = sends_of(node);
        return !tasks.empty() && tasks[0].state == send_state::retrying && tasks[0].attempts >= 2;
      },
      30s))
      << node.log();
  std::this_thread::sleep_for(20s);
  storescp_peer late{scratch.path(), {}, port};
  ASSERT_TRUE(all_sends(node, 1, "done", 30s)) << node.log();
  EXPECT_EQ(late.files().size(), 10u);
  EXPECT_GT(sends_of(node)[0].attempts, 3) << "it took retries";
}

TEST(routing, a_destination_that_refuses_every_store_fails_after_max_attempts) {
  temp_dir root, refusing_root, scratch;
  node_options refusing_options;
  refusing_options.reserve_free_mb = std::uint64_t{1} << 40; // answers 0xA700 to every store
  test_node refusing{refusing_root.path(), refusing_options};
  write_stream(refusing.streams_dir(), "in", "REFUSER");
  refusing.start();
  node_options options;
  options.extra_config = R"("sending": {"retry_initial_s": 0.2, "max_attempts": 3})";
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("REFUSER", refusing.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 3, 16)), 0);
  ASSERT_TRUE(all_sends(node, 1, "failed", 60s)) << node.log();
  auto task = sends_of(node)[0];
  EXPECT_EQ(task.attempts, 3);
  EXPECT_EQ(task.files_failed, 3);
  EXPECT_NE(task.message.find("3 of 3 files not stored after 3 attempts"), std::string::npos)
      << task.message;
  auto db = database::open(node.data_dir() / "dcmstreams.db", false);
  auto files = (*db)->send_files(task.id);
  ASSERT_TRUE(files);
  for (auto& file : *files) {
    EXPECT_EQ(file.state, file_send_state::refused);
    EXPECT_EQ(file.status, 0xA700) << "the refusal is recorded per instance";
  }
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(sends_of(node)[0].attempts, 3) << "no endless loop";
}

TEST(routing, kill_9_during_a_send_resumes_with_at_most_the_instance_in_flight_again) {
  temp_dir root, destination_root, scratch;
  // The destination keeps the study pending throughout, so its count of
  // instances is what arrived.
  node_options target_options;
  target_options.quiet_period_s = 60;
  test_node target{destination_root.path(), target_options};
  node_options options;
  options.extra_config = fast_retries;
  auto node = send_150_instances_to_another_node(target, root, scratch, options);
  ASSERT_TRUE(eventually([&] { return target.pending_instances() >= 20; }, 60s)) << node->log();
  node->kill();
  auto before_restart = target.pending_instances();
  ASSERT_LT(before_restart, 150u) << "the kill came too late to test anything";
  node->start();
  ASSERT_TRUE(node->wait_for_log("resuming 1 sends", 5s)) << node->log();
  ASSERT_TRUE(all_sends(*node, 1, "done", 120s)) << node->log();
  EXPECT_TRUE(eventually([&] { return target.pending_instances() == 150; }, 20s));
  std::size_t again = 0, at = 0;
  auto log = target.log();
  while ((at = log.find("the new copy replaces the earlier one", at)) != std::string::npos) {
    ++again;
    ++at;
  }
  EXPECT_LE(again, 1u) << "only the instance in flight may be sent twice";
}

TEST(routing, a_sends_progress_is_live_while_its_files_are_stored) {
  temp_dir root, destination_root, scratch;
  test_node target{destination_root.path()};
  auto sender = send_150_instances_to_another_node(target, root, scratch, {});
  auto& node = *sender;
  // While the send runs, the API shows files stored so far.
  std::regex sending{R"("state":"sending".*"files_sent":([0-9]+))"};
  int seen = 0;
  EXPECT_TRUE(eventually(
      [&] {
        auto body = http_get(node.web_port(), "/api/v1/sends").body;
        std::smatch match;
        if (std::regex_search(body, match, sending))
          seen = std::stoi(match[1].str());
        return seen > 0 && seen < 150;
      },
      60s))
      << "files_sent stayed " << seen << " during the send";
  ASSERT_TRUE(all_sends(node, 1, "done", 120s)) << node.log();
  EXPECT_EQ(sends_of(node)[0].files_sent, 150);
}

TEST(routing, compressed_inputs_are_decompressed_for_a_destination_that_wants_uncompressed) {
  temp_dir root, scratch;
  storescp_peer plain{scratch.path()}; // storescp accepts only uncompressed by default
  node_options options;
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("PLAIN", plain.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(
      send(node, "COPY", synth_study(scratch / "s", 4, 32, 1, {"--transfer-syntax", "jpeg-ls"})),
      0);
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  auto job_input = test_node::input_files(node.job_dirs().at(0));
  ASSERT_EQ(transfer_syntax_of(job_input.at(0)), UID_JPEGLSLosslessTransferSyntax)
      << "the node kept the study as sent";
  ASSERT_EQ(plain.files().size(), 4u);
  for (auto& file : plain.files()) {
    auto syntax = transfer_syntax_of(file);
    EXPECT_TRUE(syntax == UID_LittleEndianExplicitTransferSyntax ||
                syntax == UID_LittleEndianImplicitTransferSyntax)
        << file << " arrived in " << syntax;
  }
}

TEST(routing, a_destination_with_a_transfer_syntax_receives_compressed_files) {
  temp_dir root, scratch;
  storescp_peer any{scratch.path(), {"+xa"}};
  node_options options;
  options.extra_config =
      R"("destinations": {"archive": {"host": "127.0.0.1", "port": )" + std::to_string(any.port()) +
      R"(, "ae_title": "ARCHIVE", "transfer_syntax": "jpeg-ls", "associations": 2}})";
  options.routing_json =
      R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": "archive"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 6, 32)), 0);
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  ASSERT_EQ(any.files().size(), 6u);
  for (auto& file : any.files())
    EXPECT_EQ(transfer_syntax_of(file), UID_JPEGLSLosslessTransferSyntax) << file;
  EXPECT_EQ(sends_of(node)[0].destination, "archive");
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_TRUE(
      contains(metrics, "dcmstreams_send_duration_seconds_count{destination=\"archive\"} 1"))
      << metrics;
  EXPECT_TRUE(contains(metrics,
                       "dcmstreams_send_attempt_duration_seconds_count{destination=\"archive\"} 1"))
      << metrics;
}

TEST(routing, a_destination_that_de_identifies_gets_pseudonymous_copies_and_another_the_originals) {
  temp_dir root, scratch;
  storescp_peer research{scratch / "research", {"+xa"}}, clinical{scratch / "clinical"};
  node_options options;
  options.extra_config =
      R"("destinations": {"research": {"host": "127.0.0.1", "port": )" +
      std::to_string(research.port()) +
      R"(, "ae_title": "RESEARCH", "deidentify": {"shift_dates": true}, "transfer_syntax": "jpeg-ls"},
          "clinical": {"host": "127.0.0.1", "port": )" +
      std::to_string(clinical.port()) + R"(, "ae_title": "CLINICAL"}},
          "deidentify": {"keep_mapping": true})";
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT",
                                           "send": [{".*": "research"}, {".*": "clinical"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  auto study = synth_study(scratch / "s", 4, 32);
  std::set<std::string> originals;
  for (auto& file : files_under(study))
    originals.insert(sop_instance_uid(file));
  ASSERT_EQ(send(node, "COPY", study), 0);
  ASSERT_TRUE(all_sends(node, 2, "done", 60s)) << node.log();
  ASSERT_EQ(research.files().size(), 4u);
  for (auto& file : research.files()) {
    EXPECT_EQ(originals.count(sop_instance_uid(file)), 0u) << file;
    EXPECT_EQ(sop_instance_uid(file).rfind("2.25.", 0), 0u) << file;
    EXPECT_EQ(attribute_text(file, "PatientID").rfind("ANON-", 0), 0u) << file;
    EXPECT_EQ(attribute_text(file, "LongitudinalTemporalInformationModified"), "MODIFIED");
    EXPECT_EQ(transfer_syntax_of(file), UID_JPEGLSLosslessTransferSyntax) << "and then compressed";
    expect_valid_dicom({file});
  }
  // What the research copies say can be traced back by an admin.
  auto copy = research.files().at(0);
  auto traced = http_get(node.web_port(), "/api/v1/pseudonyms?value=" + sop_instance_uid(copy));
  EXPECT_EQ(traced.status, 200) << traced.body;
  bool found_original = false;
  for (auto& uid : originals)
    found_original |= contains(traced.body, "\"original\":\"" + uid + "\"");
  EXPECT_TRUE(found_original) << traced.body;
  std::set<std::string> at_clinical;
  for (auto& file : clinical.files())
    at_clinical.insert(sop_instance_uid(file));
  EXPECT_EQ(at_clinical, originals) << "the other destination gets the originals";
  for (auto& task : sends_of(node))
    EXPECT_EQ(task.deidentify, task.destination == "research" ? "shift_dates" : "")
        << task.destination;
  auto job = node.job_dirs().at(0);
  for (auto& file : test_node::input_files(job))
    EXPECT_EQ(originals.count(sop_instance_uid(file)), 1u) << "INPUT stays as it came";
}

TEST(routing, jpeg_2000_is_forwarded_as_received_and_a_peer_that_refuses_it_gets_a_clear_reason) {
  temp_dir root, scratch;
  orthanc_peer pacs{scratch.path(), "PACS"};
  storescp_peer plain{scratch.path()}; // uncompressed syntaxes only
  node_options options;
  options.extra_config = R"("sending": {"retry_initial_s": 0.2, "max_attempts": 2})";
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("PACS", pacs.dicom_port()) + R"(}, {".*": )" +
                         destination("PLAIN", plain.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  // DCMTK 3.6.7 has no JPEG 2000 codec: the node can store and forward it,
  // never decode it.
  auto j2k = pydicom_test_files() / "MR_small_jp2klossless.dcm";
  ASSERT_EQ(send(node, "COPY", j2k), 0);
  ASSERT_TRUE(eventually([&] { return sends_of(node).size() == 2; }, 30s)) << node.log();
  ASSERT_TRUE(eventually(
      [&] {
        auto tasks = sends_of(node);
        return std::all_of(tasks.begin(), tasks.end(), [](const send_task& t) {
          return t.state == send_state::done || t.state == send_state::failed;
        });
      },
      60s))
      << node.log();
  for (auto& task : sends_of(node)) {
    if (task.called_ae == "PACS") {
      EXPECT_EQ(task.state, send_state::done) << task.message;
    } else {
      EXPECT_EQ(task.state, send_state::failed);
      EXPECT_TRUE(contains(task.message, "accepted no presentation context for MRImageStorage "
                                         "in JPEG 2000"))
          << task.message;
      EXPECT_TRUE(contains(task.message, "cannot decode JPEG 2000")) << task.message;
    }
  }
  auto stored = pacs.instances();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(pacs.get("/instances/" + stored[0] + "/metadata/TransferSyntax"),
            UID_JPEG2000LosslessOnlyTransferSyntax);
  EXPECT_TRUE(plain.files().empty());
  EXPECT_TRUE(contains(node.log(), "cannot decode JPEG 2000")) << node.log();
}

TEST(routing, a_destinations_transfer_syntax_is_what_orthanc_and_storescp_receive) {
  temp_dir root, scratch;
  orthanc_peer pacs{scratch.path(), "PACS"};
  storescp_peer any{scratch.path(), {"+xa"}};
  node_options options;
  auto destination_json = [](const std::string& ae, std::uint16_t port) {
    return R"({"host": "127.0.0.1", "port": )" + std::to_string(port) + R"(, "ae_title": ")" + ae +
           R"(", "transfer_syntax": "jpeg-ls"})";
  };
  options.extra_config = R"("destinations": {"pacs": )" +
                         destination_json("PACS", pacs.dicom_port()) + R"(, "scp": )" +
                         destination_json("ANY", any.port()) + "}";
  options.routing_json =
      R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": "pacs"}, {".*": "scp"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 3, 32)), 0);
  ASSERT_TRUE(all_sends(node, 2, "done", 60s)) << node.log();
  auto stored = pacs.instances();
  ASSERT_EQ(stored.size(), 3u);
  for (auto& id : stored)
    EXPECT_EQ(pacs.get("/instances/" + id + "/metadata/TransferSyntax"),
              UID_JPEGLSLosslessTransferSyntax);
  ASSERT_EQ(any.files().size(), 3u);
  for (auto& file : any.files())
    EXPECT_EQ(transfer_syntax_of(file), UID_JPEGLSLosslessTransferSyntax) << file;
}

TEST(routing, a_send_that_cannot_connect_says_why) {
  temp_dir root, scratch;
  node_options options;
  options.extra_config = R"("sending": {"retry_initial_s": 0.2, "max_attempts": 2})";
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("NOBODY", free_port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 2, 16)), 0);
  ASSERT_TRUE(all_sends(node, 1, "failed", 60s)) << node.log();
  auto message = sends_of(node)[0].message;
  EXPECT_TRUE(contains(message, "association with NOBODY@127.0.0.1:")) << message;
  EXPECT_TRUE(contains(message, "failed: ")) << message;
  EXPECT_FALSE(contains(node.log(), "unsent ()")) << node.log();
}

TEST(routing, a_changed_file_applies_and_a_broken_one_keeps_the_last_good_rules) {
  temp_dir root, scratch;
  storescp_peer first{scratch.path()}, second{scratch.path()};
  node_options options;
  options.routing_json = R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                         destination("ONE", first.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  node.write_routing(R"({"routing": [{"RouteDirectory": "INPUT", "send": [{".*": )" +
                     destination("TWO", second.port()) + R"(}]}]})");
  ASSERT_TRUE(node.wait_for_log("loaded 1 routing rules", 5s));
  ASSERT_TRUE(eventually(
      [&] {
        auto log = node.log();
        return log.find("loaded 1 routing rules") != log.rfind("loaded 1 routing rules");
      },
      5s))
      << "the change is picked up";
  node.write_routing(R"({"routing": [{"send": [{".*": {"IP": "127.0.0.1"}}]}]})");
  ASSERT_TRUE(node.wait_for_log("keeping the last good routing rules", 5s)) << node.log();
  EXPECT_NE(node.log().find("routing[0].send[0].\".*\": needs \"PORT\""), std::string::npos)
      << node.log();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 3, 16)), 0);
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  EXPECT_EQ(first.files().size(), 0u);
  EXPECT_EQ(second.files().size(), 3u);
}

TEST(routing, skipped_jobs_are_not_routed_and_only_dicom_output_is_sent) {
  temp_dir root, scratch;
  storescp_peer peer{scratch.path()};
  node_options options;
  options.routing_json =
      R"({"routing": [{"send": [{".*": )" + destination("PEER", peer.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "mr-only", "MRONLY",
               R"("pipeline": [{"kernel": "stats"}], "accept": {"Modality": "^MR$"})");
  write_stream(node.streams_dir(), "stats", "STATS", R"("pipeline": [{"kernel": "stats"}])");
  write_stream(node.streams_dir(), "smooth", "SMOOTH", R"("pipeline": [{"kernel": "median"}])");
  node.start();
  auto study = synth_study(scratch / "s", 3, 16);
  ASSERT_EQ(send(node, "MRONLY", study), 0);
  ASSERT_EQ(send(node, "STATS", study), 0);
  ASSERT_EQ(send(node, "SMOOTH", study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(3, 30s)) << node.log();
  ASSERT_TRUE(all_sends(node, 1, "done", 30s)) << node.log();
  EXPECT_EQ(peer.files().size(), 3u) << "only the median series; no result.json, nothing skipped";
  EXPECT_NE(node.log().find("has no files to send"), std::string::npos)
      << "the stats job matched but had only result.json";
}

TEST(routing, a_dry_run_shows_what_the_rules_would_send_and_a_job_is_sent_by_hand) {
  temp_dir root, scratch;
  storescp_peer routed{scratch.path()}, by_hand{scratch.path()};
  node_options options;
  options.extra_config = R"("destinations": {"archive": {"host": "127.0.0.1", "port": )" +
                         std::to_string(by_hand.port()) + R"(, "ae_title": "ARCHIVE"}})";
  options.routing_json = R"({"routing": [{"name": "to pacs", "RouteDirectory": "INPUT", "send": [)"
                         R"({"success": )" +
                         destination("PACS", routed.port()) + R"(}, {"failed": )" +
                         destination("OTHER", routed.port()) + R"(}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPY");
  node.start();
  ASSERT_EQ(send(node, "COPY", synth_study(scratch / "s", 4, 16)), 0);
  ASSERT_TRUE(all_sends(node, 1, "done", 30s)) << node.log();
  EXPECT_EQ(routed.files().size(), 4u);

  auto dry = http_get(node.web_port(), "/api/v1/jobs/1/routing");
  ASSERT_EQ(dry.status, 200) << dry.body;
  auto preview = json::parse(dry.body, "routing");
  ASSERT_TRUE(preview);
  ASSERT_EQ((*preview)["sends"].size(), 1u) << "only the rule for success fires: " << dry.body;
  EXPECT_EQ((*preview)["sends"][0]["destination"],
            "PACS@127.0.0.1:" + std::to_string(routed.port()));
  EXPECT_EQ((*preview)["sends"][0]["files_total"], 4);
  EXPECT_EQ(sends_of(node).size(), 1u) << "a dry run sends nothing";
  EXPECT_EQ(routed.files().size(), 4u);

  auto sent = http_request(node.web_port(), "POST", "/api/v1/jobs/1/send",
                           R"({"destination": "archive", "directory": "INPUT"})",
                           {{"Content-Type", "application/json"}});
  ASSERT_EQ(sent.status, 202) << sent.body;
  EXPECT_TRUE(contains(sent.body, "\"rule\":\"sent by hand\"")) << sent.body;
  EXPECT_TRUE(eventually([&] { return by_hand.files().size() == 4; }, 30s)) << node.log();
  EXPECT_TRUE(all_sends(node, 2, "done", 30s));
  auto unknown =
      http_request(node.web_port(), "POST", "/api/v1/jobs/1/send", R"({"destination": "nowhere"})",
                   {{"Content-Type", "application/json"}});
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_TRUE(contains(unknown.body, "no destination \\\"nowhere\\\"")) << unknown.body;
  auto empty = http_request(node.web_port(), "POST", "/api/v1/jobs/1/send",
                            R"({"destination": "archive", "directory": "OUTPUT"})",
                            {{"Content-Type", "application/json"}});
  EXPECT_EQ(empty.status, 404) << "a /bin/true job has no OUTPUT: " << empty.body;
}

TEST(routing, a_destination_over_tls_gets_the_study_and_one_with_a_foreign_authority_none) {
  temp_dir root, scratch;
  test_authority hospital{scratch / "hospital"}, elsewhere{scratch / "elsewhere"};
  auto pacs_identity = hospital.issue("pacs", "IP:127.0.0.1");
  auto node_identity = hospital.issue("node", "DNS:dcmstreams.local");
  // storescp over TLS, BCP 195, requiring a client certificate of the
  // hospital's authority (its default).
  std::vector<std::string> tls_options{"+tls", pacs_identity.key.string(),
                                       pacs_identity.certificate.string(), "+cf",
                                       hospital.certificate().string()};
  std::vector<std::string> echo_options{"+tls", node_identity.key.string(),
                                        node_identity.certificate.string(), "+cf",
                                        hospital.certificate().string()};
  storescp_peer pacs{scratch / "pacs", tls_options, 0, echo_options};
  auto destination = [&](const std::string& name, const fs::path& ca) {
    return "\"" + name + "\": {\"host\": \"127.0.0.1\", \"port\": " + std::to_string(pacs.port()) +
           ", \"ae_title\": \"PACS\", \"tls\": {\"ca\": \"" + ca.string() +
           "\", \"certificate\": \"" + node_identity.certificate.string() + "\", \"key\": \"" +
           node_identity.key.string() + "\"}}";
  };
  node_options options;
  options.extra_config = "\"destinations\": {" + destination("secure", hospital.certificate()) +
                         ", " + destination("mistrusted", elsewhere.certificate()) +
                         "}, \"sending\": {\"max_attempts\": 1}";
  options.routing_json = R"({"routing": [{"AETitleIn": "SECURE", "RouteDirectory": "INPUT",
                                          "send": [{".*": "secure"}]},
                                         {"AETitleIn": "WRONG", "RouteDirectory": "INPUT",
                                          "send": [{".*": "mistrusted"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "secure", "SECURE");
  write_stream(node.streams_dir(), "wrong", "WRONG");
  node.start();
  auto study = synth_study(scratch / "s", 5, 32);
  ASSERT_EQ(send(node, "SECURE", study), 0);
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  ASSERT_EQ(pacs.files().size(), 5u) << "the whole study, over TLS";
  std::set<std::string> sent, received;
  for (auto& file : files_under(study))
    sent.insert(sop_instance_uid(file));
  for (auto& file : pacs.files())
    received.insert(sop_instance_uid(file));
  EXPECT_EQ(sent, received);

  // The destination's certificate does not chain to the authority given:
  // refused in the handshake, nothing stored, and the send says why.
  ASSERT_EQ(send(node, "WRONG", synth_study(scratch / "t", 2, 32)), 0);
  ASSERT_TRUE(eventually(
      [&] {
        auto sends = sends_of(node);
        return sends.size() == 2 && sends[0].state == send_state::failed;
      },
      60s))
      << node.log();
  auto failed = sends_of(node)[0];
  EXPECT_EQ(failed.destination, "mistrusted");
  EXPECT_TRUE(contains(failed.message, "over TLS")) << failed.message;
  EXPECT_TRUE(contains(failed.message, "signed by tls.ca")) << failed.message;
  EXPECT_EQ(pacs.files().size(), 5u);
}
