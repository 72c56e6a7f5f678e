// What keeps a node from working is named in /readyz, on the status page
// (/api/v1/status) and in the log: a missing streams folder, a routing file
// with mistakes or one that was named and is missing, and a stream whose
// info.json broke on a hot reload, which keeps its last good definition.

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int echo(const test_node& node, const std::string& ae) {
  return run({"echoscu", "-aec", ae, "127.0.0.1", std::to_string(node.port())}).exit_code;
}

} // namespace

TEST(readiness, no_streams_and_a_broken_routing_file_make_the_node_unready_with_every_problem) {
  temp_dir root;
  node_options options;
  // Two mistakes: both must be named, not only the first.
  options.routing_json = R"({"routing": [{"send": [{".*": {"IP": "", "PORT": 104,
    "AETitleTo": "PACS"}}], "status": "on"}]})";
  test_node node{root.path(), options};
  fs::remove_all(node.streams_dir());
  node.start();
  auto ready = http_get(node.web_port(), "/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_TRUE(contains(ready.body, "the streams folder does not exist")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "no stream is loaded from")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "routing[0].send[0].\\\".*\\\".IP: is empty")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "routing[0].status")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "no routing rules until it is fixed")) << ready.body;
  auto status = http_get(node.web_port(), "/api/v1/status").body;
  EXPECT_TRUE(contains(status, "\"problems\":[\"")) << status;
  EXPECT_TRUE(contains(status, "no stream is loaded from")) << status;
  auto log = node.log();
  EXPECT_TRUE(contains(log, "routing[0].send[0]")) << log;
  EXPECT_TRUE(contains(log, "routing[0].status")) << log;
  EXPECT_TRUE(contains(log, "no stream is loaded from")) << log;

  // Fixing both makes it ready again, without a restart.
  write_stream(node.streams_dir(), "test", "TESTAE");
  node.write_routing(R"({"routing": []})");
  EXPECT_TRUE(eventually([&] { return http_get(node.web_port(), "/readyz").status == 200; }, 10s))
      << http_get(node.web_port(), "/readyz").body;
  EXPECT_EQ(echo(node, "TESTAE"), 0);
}

TEST(readiness, a_routing_file_named_on_the_command_line_that_does_not_exist_is_a_problem) {
  temp_dir root;
  write_stream(root / "streams", "test", "TESTAE");
  auto web_port = free_port();
  process node{
      {{dcmstreams_binary().string(), "serve", "--streams", (root / "streams").string(), "--data",
        (root / "data").string(), "--routing", (root / "no-such-routing.json").string(),
        "--dicom-port", std::to_string(free_port()), "--web-port", std::to_string(web_port)},
       {{"TCP_NODELAY", "1"}},
       root.path(),
       root / "node.log"}};
  ASSERT_TRUE(
      eventually([&] { return contains(read_file(root / "node.log"), "serve: ready"); }, 30s))
      << read_file(root / "node.log");
  auto ready = http_get(web_port, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_TRUE(contains(ready.body, "no-such-routing.json does not exist")) << ready.body;
  EXPECT_TRUE(contains(read_file(root / "node.log"), "no-such-routing.json does not exist"));
}

TEST(readiness, a_stream_whose_info_json_breaks_keeps_running_its_last_good_definition) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "test", "TESTAE",
               R"("command": ["/bin/sh", "-c", "echo first > \"$1/version.txt\""])");
  node.start();
  ASSERT_EQ(http_get(node.web_port(), "/readyz").status, 200);

  write_file(node.streams_dir() / "test" / "info.json", R"({"AETitle": "TESTAE", "command": )");
  ASSERT_TRUE(node.wait_for_log("keeps its last good definition", 10s)) << node.log();
  EXPECT_EQ(echo(node, "TESTAE"), 0) << "the AE title is still served";
  send_synthetic_study(node, scratch / "study", "TESTAE", 2);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  EXPECT_EQ(read_file(node.job_dirs().at(0) / "OUTPUT" / "version.txt"), "first\n");
  auto ready = http_get(node.web_port(), "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_TRUE(contains(ready.body, "info.json")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "stream test keeps its last good definition (AE title TESTAE)"))
      << ready.body;

  // Fixed, the new definition applies and the problem is gone.
  write_stream(node.streams_dir(), "test", "TESTAE",
               R"("command": ["/bin/sh", "-c", "echo second > \"$1/version.txt\""])");
  EXPECT_TRUE(eventually([&] { return http_get(node.web_port(), "/readyz").status == 200; }, 10s));
}
