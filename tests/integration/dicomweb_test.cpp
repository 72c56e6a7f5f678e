// DICOMweb STOW-RS into the node (POST /dicomweb/{AE}/studies): instances in
// a multipart/related body are stored as C-STORE stores them, bit for bit,
// answered with PS3.18's response, and become a job of the stream; parts
// that are not DICOM are refused one by one; Orthanc's DICOMweb plugin, a
// real STOW-RS client, sends a study to the node.

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_scu.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string boundary = "dcmstreams-test-boundary-7f3a";

struct part {
  std::string content_type;
  std::string bytes;
};

std::string multipart(const std::vector<part>& parts) {
  std::string body;
  for (auto& p : parts)
    body += "--" + boundary + "\r\nContent-Type: " + p.content_type + "\r\n\r\n" + p.bytes + "\r\n";
  return body + "--" + boundary + "--\r\n";
}

std::set<std::string> sequence_uids(const json::value& body, const char* sequence) {
  std::set<std::string> uids;
  if (!body.contains(sequence))
    return uids;
  for (auto& item : body[sequence]["Value"])
    if (item.contains("00081155"))
      uids.insert(item["00081155"]["Value"][0].get<std::string>());
  return uids;
}

// A running node whose stream "copy" has the AE title COPY.
std::unique_ptr<test_node> copy_node(const temp_dir& root, double quiet_period_s = 0.5) {
  node_options options;
  options.quiet_period_s = quiet_period_s;
  auto node = std::make_unique<test_node>(root.path(), options);
  write_stream(node->streams_dir(), "copy", "COPY");
  node->start();
  return node;
}

} // namespace

TEST(dicomweb, stow_rs_stores_each_instance_as_c_store_would_and_refuses_what_is_not_dicom) {
  temp_dir root, scratch;
  auto node_owner = copy_node(root);
  auto& node = *node_owner;
  auto study = synth_study(scratch / "s", 3, 16);
  std::vector<part> parts;
  std::set<std::string> sent;
  for (auto& file : files_under(study)) {
    parts.push_back({"application/dicom", read_file(file)});
    sent.insert(sop_instance_uid(file));
  }
  parts.push_back({"application/dicom", "this is not DICOM"});
  parts.push_back({"application/json", "{}"});
  auto type = "multipart/related; type=\"application/dicom\"; boundary=" + boundary;
  auto reply = http_request(node.web_port(), "POST", "/dicomweb/COPY/studies", multipart(parts),
                            {{"Content-Type", type}});
  ASSERT_EQ(reply.status, 202) << reply.body;
  EXPECT_EQ(reply.headers["content-type"], "application/dicom+json");
  auto body = json::parse(reply.body, "STOW-RS answer");
  ASSERT_TRUE(body);
  EXPECT_EQ(sequence_uids(*body, "00081199"), sent) << reply.body;
  ASSERT_TRUE(body->contains("00081198")) << reply.body;
  std::multiset<int> reasons;
  for (auto& item : (*body)["00081198"]["Value"])
    reasons.insert(item["00081197"]["Value"][0].get<int>());
  EXPECT_EQ(reasons, (std::multiset<int>{0x0122, 0xC000})) << reply.body;

  // The stream's job holds exactly the instances, data sets bit for bit.
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 20s)) << node.log();
  auto job = node.job_dirs().at(0);
  EXPECT_EQ(test_node::job_info(job, "AETitleCaller"), "DICOMWEB");
  auto stored = test_node::input_files(job);
  ASSERT_EQ(stored.size(), 3u);
  std::map<std::string, fs::path> originals;
  for (auto& file : files_under(study))
    originals[sop_instance_uid(file)] = file;
  for (auto& file : stored)
    EXPECT_TRUE(dataset_bytes(file) == dataset_bytes(originals.at(sop_instance_uid(file)))) << file;

  // Wrong requests say what is wrong; all-refused is 409.
  EXPECT_EQ(http_request(node.web_port(), "POST", "/dicomweb/NOSUCH/studies",
                         multipart({parts.back()}), {{"Content-Type", type}})
                .status,
            404);
  auto wrong_type = http_request(node.web_port(), "POST", "/dicomweb/COPY/studies", "x",
                                 {{"Content-Type", "application/dicom"}});
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_TRUE(contains(wrong_type.body, "multipart/related")) << wrong_type.body;
  auto none = http_request(node.web_port(), "POST", "/dicomweb/COPY/studies",
                           multipart({{"application/dicom", "nothing"}}), {{"Content-Type", type}});
  EXPECT_EQ(none.status, 409) << none.body;
  EXPECT_TRUE(node.running());
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_EQ(metric_sample(metrics, "dcmstreams_stow_requests_total{status=\"202\"}"), 1);
  EXPECT_EQ(metric_sample(metrics, "dcmstreams_stow_requests_total{status=\"409\"}"), 1);
  EXPECT_EQ(metric_sample(metrics, "dcmstreams_stow_requests_total{status=\"404\"}"), 1);
  EXPECT_EQ(metric_sample(metrics, "dcmstreams_instances_received_total{called_ae=\"COPY\"}"), 3);
}

TEST(dicomweb, orthanc_s_dicomweb_plugin_sends_a_study_to_the_node_by_stow_rs) {
  temp_dir root, scratch;
  auto node_owner = copy_node(root);
  auto& node = *node_owner;
  auto url = "http://127.0.0.1:" + std::to_string(node.web_port()) + "/dicomweb/COPY/";
  orthanc_peer orthanc{scratch.path(), "ORTHANC", "{\"node\": [\"" + url + "\"]}"};
  auto study = synth_study(scratch / "s", 4, 16);
  auto stored = run({"storescu", "-aec", "ORTHANC", "+sd", "+r", "127.0.0.1",
                     std::to_string(orthanc.dicom_port()), study.string()});
  ASSERT_EQ(stored.exit_code, 0) << stored.output;
  auto studies = json::parse(orthanc.get("/studies"), "orthanc studies");
  ASSERT_TRUE(studies && studies->size() == 1) << orthanc.get("/studies");
  auto id = (*studies)[0].get<std::string>();
  auto answer = orthanc.post("/dicom-web/servers/node/stow",
                             "{\"Resources\": [\"" + id + "\"], \"Synchronous\": true}");
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << answer << "\n" << node.log();
  auto job = node.job_dirs().at(0);
  std::set<std::string> sent, received;
  for (auto& file : files_under(study))
    sent.insert(sop_instance_uid(file));
  for (auto& file : test_node::input_files(job))
    received.insert(sop_instance_uid(file));
  EXPECT_EQ(received, sent) << answer;
  EXPECT_TRUE(contains(node.log(), "STOW-RS from 127.0.0.1 for COPY: 4 instances stored"))
      << node.log();
}

// Instances that fit a journal record go to the ingest journal (one flush for
// the request), larger ones to incoming/ as files; either way what the 200
// acknowledged survives kill -9 and becomes the study's job, bit for bit.
TEST(dicomweb, acknowledged_stow_rs_instances_survive_kill_9_in_the_journal_or_as_files) {
  temp_dir root, scratch;
  auto node_owner = copy_node(root, 2);
  auto& node = *node_owner;
  auto small = synth_study(scratch / "small", 20, 16);
  auto large = synth_study(scratch / "large", 2, 800); // 1.3 MB each: above a record
  std::vector<part> parts;
  std::map<std::string, std::string> sent;
  for (auto* study : {&small, &large})
    for (auto& file : files_under(*study)) {
      parts.push_back({"application/dicom", read_file(file)});
      sent[sop_instance_uid(file)] = dataset_bytes(file);
    }
  auto reply = http_request(
      node.web_port(), "POST", "/dicomweb/COPY/studies", multipart(parts),
      {{"Content-Type", "multipart/related; type=\"application/dicom\"; boundary=" + boundary}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(node.incoming_files().size(), 2u) << "only the two large instances are files";
  node.kill();

  node.start();
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 30s)) << node.log();
  std::size_t received = 0;
  for (auto& job : node.job_dirs()) {
    auto files = test_node::input_files(job);
    for (auto& file : files) {
      ++received;
      auto uid = sop_instance_uid(file);
      ASSERT_EQ(sent.count(uid), 1u) << uid;
      EXPECT_TRUE(dataset_bytes(file) == sent[uid]) << file;
    }
    expect_valid_dicom(files);
  }
  EXPECT_EQ(received, 22u);
}

// A request's scratch file once had the same kind of name as the HTTP
// server's request bodies in incoming/.tmp, from another counter: once the
// counters drifted apart (a request refused before it stored anything, or
// requests handled out of order), one request's scratch file was another's
// body, and the request still sending its body lost it. Now: a slow request
// beside two quick ones, all stored, and no body left behind.
TEST(dicomweb, a_slow_stow_rs_request_keeps_its_body_while_others_are_stored) {
  temp_dir root, scratch;
  auto node_owner = copy_node(root, 2);
  auto& node = *node_owner;
  auto type = "multipart/related; type=\"application/dicom\"; boundary=" + boundary;
  auto body_of = [&](const fs::path& study) {
    std::vector<part> parts;
    for (auto& file : files_under(study))
      parts.push_back({"application/dicom", read_file(file)});
    return multipart(parts);
  };
  // Refused before anything is stored: the body counter moves on alone.
  EXPECT_EQ(http_request(node.web_port(), "POST", "/dicomweb/NOSUCH/studies", "x",
                         {{"Content-Type", type}})
                .status,
            404);
  auto receive_dir = node.data_dir() / "incoming" / ".tmp";
  auto bodies_left = [&] {
    std::size_t n = 0;
    for (auto& entry : fs::directory_iterator(receive_dir))
      n += entry.path().filename().string().rfind("upload-", 0) == 0;
    return n;
  };
  EXPECT_EQ(bodies_left(), 0u) << "a refused request's body is not left behind";
  auto slow_body = body_of(synth_study(scratch / "slow", 3, 16));
  int slow = connect_tcp("127.0.0.1", node.web_port());
  ASSERT_GE(slow, 0);
  std::string head =
      "POST /dicomweb/COPY/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + type +
      "\r\nContent-Length: " + std::to_string(slow_body.size()) + "\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(send_all(slow, head + slow_body.substr(0, slow_body.size() / 2)));
  std::this_thread::sleep_for(300ms); // its body file exists now
  auto quick_body = body_of(synth_study(scratch / "quick", 2, 16));
  for (int i = 0; i < 2; ++i) {
    auto quick = http_request(node.web_port(), "POST", "/dicomweb/COPY/studies", quick_body,
                              {{"Content-Type", type}});
    EXPECT_EQ(quick.status, 200) << quick.body;
  }
  ASSERT_TRUE(send_all(slow, slow_body.substr(slow_body.size() / 2)));
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(slow, buffer, sizeof buffer, 0)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(n));
  ::close(slow);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer << "\n" << node.log();
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 30s)) << node.log();
  std::size_t stored = 0;
  for (auto& job : node.job_dirs())
    stored += test_node::input_files(job).size();
  EXPECT_EQ(stored, 5u) << "the quick study twice is one study of 2";
  EXPECT_EQ(bodies_left(), 0u);
}

// A client that asks "Expect: 100-continue" (curl does for bodies above 1 MB)
// gets the interim answer before it sends its body, not a wait for its own
// timeout.
TEST(dicomweb, a_client_that_expects_100_continue_is_told_to_go_on) {
  temp_dir root, scratch;
  auto node_owner = copy_node(root);
  auto& node = *node_owner;
  std::vector<part> parts;
  for (auto& file : files_under(synth_study(scratch / "s", 2, 16)))
    parts.push_back({"application/dicom", read_file(file)});
  auto body = multipart(parts);
  int fd = connect_tcp("127.0.0.1", node.web_port());
  ASSERT_GE(fd, 0);
  closing_fds hold{{fd}};
  ASSERT_TRUE(send_all(fd, "POST /dicomweb/COPY/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Content-Type: multipart/related; type=\"application/dicom\"; "
                           "boundary=" +
                               boundary + "\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"));
  pollfd ready{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 10000), 1) << "no interim answer before the body";
  char buffer[4096];
  auto n = ::recv(fd, buffer, sizeof buffer, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(send_all(fd, body));
  std::string answer;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
    answer.append(buffer, static_cast<std::size_t>(n));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
}

// STOW-RS out: a destination {"dicomweb": URL, "auth": ...} gets results by
// STOW-RS, as recorded sends with the same retries as C-STORE. Orthanc's
// DICOMweb plugin, asking for a user, is the archive; a wrong password fails
// the send, after its retries, with the archive's answer in its message.
TEST(dicomweb_out, results_reach_orthanc_by_stow_rs_and_a_wrong_password_fails_the_send) {
  temp_dir root, scratch;
  orthanc_peer orthanc{scratch.path(), "ORTHANC", "{}", "", "alice:secret"};
  auto url = "http://127.0.0.1:" + std::to_string(orthanc.http_port()) + "/dicom-web/";
  node_options options;
  options.extra_config =
      R"("sending": {"retry_initial_s": 0.2, "retry_factor": 1, "max_attempts": 3},
         "destinations": {"archive": {"dicomweb": ")" +
      url + R"(", "auth": {"username": "alice", "password": "secret"}},
                          "wrong": {"dicomweb": ")" +
      url + R"(", "auth": {"username": "alice", "password": "nope"}}})";
  options.routing_json = R"({"routing": [
      {"AETitleIn": "ARCHIVE", "RouteDirectory": "INPUT", "send": [{".*": "archive"}]},
      {"AETitleIn": "WRONG", "RouteDirectory": "INPUT", "send": [{".*": "wrong"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "archive", "ARCHIVE");
  write_stream(node.streams_dir(), "wrong", "WRONG");
  node.start();

  auto study = scratch / "s";
  ASSERT_NO_FATAL_FAILURE(send_synthetic_study(node, study, "ARCHIVE", 70, 32));
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  auto sends = sends_of(node);
  EXPECT_EQ(sends.front().files_sent, 70) << "70 instances in two requests (64 + 6)";
  EXPECT_EQ(sends.front().destination, "archive");
  std::set<std::string> sent, stored;
  for (auto& file : files_under(study))
    sent.insert(sop_instance_uid(file));
  for (auto& id : orthanc.instances())
    stored.insert(orthanc.tags(id)["SOPInstanceUID"]);
  EXPECT_EQ(stored, sent);

  send_synthetic_study(node, scratch / "w", "WRONG", 2);
  ASSERT_TRUE(eventually(
      [&] {
        auto all = sends_of(node);
        return all.size() == 2 && to_string(all.front().state) == std::string{"failed"};
      },
      60s))
      << node.log();
  auto failed = sends_of(node).front();
  EXPECT_EQ(failed.attempts, 3);
  EXPECT_TRUE(contains(failed.message, "HTTP 401")) << failed.message;
  EXPECT_EQ(orthanc.instances().size(), 70u) << "nothing of the wrong password's send arrived";
}

// The archive is a second node's own STOW-RS (POST /dicomweb/{AE}/studies),
// down when the send starts: the send retries with back-off, saying why,
// and delivers everything bit for bit once the archive is up.
TEST(dicomweb_out, an_archive_that_is_down_gets_the_study_by_the_retries_once_it_is_up) {
  temp_dir root, scratch, archive_root;
  test_node archive{archive_root.path()};
  write_stream(archive.streams_dir(), "in", "TARGET");
  node_options options;
  options.extra_config =
      R"("sending": {"retry_initial_s": 0.5, "retry_factor": 2, "retry_max_s": 2, "max_attempts": 30},
         "destinations": {"archive": {"dicomweb": "http://127.0.0.1:)" +
      std::to_string(archive.web_port()) + R"(/dicomweb/TARGET"}})";
  options.routing_json =
      R"({"routing": [{"AETitleIn": "OUT", "RouteDirectory": "INPUT", "send": [{".*": "archive"}]}]})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "out", "OUT");
  node.start();
  auto study = scratch / "s";
  ASSERT_NO_FATAL_FAILURE(send_synthetic_study(node, study, "OUT", 5, 64));
  ASSERT_TRUE(eventually(
      [&] {
        auto sends = sends_of(node);
        return sends.size() == 1 && sends.front().attempts >= 2 &&
               contains(sends.front().message, "Connection refused");
      },
      30s))
      << node.log();

  archive.start();
  ASSERT_TRUE(all_sends(node, 1, "done", 60s)) << node.log();
  ASSERT_TRUE(archive.wait_for_finished_jobs(1, 30s)) << archive.log();
  std::map<std::string, std::string> sent;
  for (auto& file : files_under(study))
    sent[sop_instance_uid(file)] = dataset_bytes(file);
  auto received = test_node::input_files(archive.job_dirs().front());
  ASSERT_EQ(received.size(), 5u);
  for (auto& file : received)
    EXPECT_TRUE(dataset_bytes(file) == sent[sop_instance_uid(file)]) << file;
  EXPECT_TRUE(contains(archive.log(), "DICOMWEB")) << "stored as STOW-RS instances";
}
