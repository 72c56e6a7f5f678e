// Self-healing inside a running node: a stream mailbox that dies is
// restarted and its jobs still run, each once; a listener that stops
// answering is restarted by the C-ECHO watchdog. Faults come from the test
// hooks of DCMSTREAMS_TEST_HOOKS=1.

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

run_result echo(const test_node& node, const std::string& called_ae) {
  return run({"echoscu", "-aec", called_ae, "-to", "2", "-ta", "2", "-td", "2", "127.0.0.1",
              std::to_string(node.port())},
             20s, {{"TCP_NODELAY", "1"}});
}

} // namespace

TEST(supervision, a_killed_stream_mailbox_comes_back_and_every_job_runs_once) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.2;
  options.test_hooks = true;
  test_node node{root.path(), options};
  // Each run appends a line to a file outside the job: runs are counted.
  auto runs = scratch / "runs.txt";
  write_stream(node.streams_dir(), "slow", "SLOWAE",
               R"("command": ["/bin/sh", "-c", "echo run >> )" + runs.string() +
                   R"(; sleep 1; cp -r \"$0\"/. \"$1\""])");
  node.start();
  for (int i = 0; i < 4; ++i)
    send_synthetic_study(node, scratch / ("study" + std::to_string(i)), "SLOWAE");
  ASSERT_TRUE(node.wait_for_log("job 4 queued", 20s)) << node.log();
  ASSERT_TRUE(node.wait_for_log("job 1 of stream slow starts", 20s)) << node.log();

  // Killed while job 1 runs and jobs 2-4 wait.
  auto killed = http_request(node.web_port(), "POST", "/api/v1/test/kill-mailbox/slow");
  ASSERT_EQ(killed.status, 200) << killed.body;
  EXPECT_TRUE(node.wait_for_log("the mailbox of stream slow stopped", 10s)) << node.log();
  ASSERT_TRUE(node.wait_for_finished_jobs(4, 60s)) << node.log();
  for (auto& dir : node.job_dirs())
    EXPECT_EQ(test_node::job_info(dir, "state"), "success") << dir << node.log();
  EXPECT_EQ(read_file(runs), "run\nrun\nrun\nrun\n") << node.log();
  EXPECT_TRUE(contains(node.log(), "in 0.5 s (restart 1 in ten minutes)")) << node.log();

  // A second death in a row waits twice as long; the stream still works.
  killed = http_request(node.web_port(), "POST", "/api/v1/test/kill-mailbox/slow");
  ASSERT_EQ(killed.status, 200) << killed.body;
  EXPECT_TRUE(node.wait_for_log("in 1.0 s (restart 2 in ten minutes)", 10s)) << node.log();
  send_synthetic_study(node, scratch / "after", "SLOWAE");
  ASSERT_TRUE(node.wait_for_finished_jobs(5, 30s)) << node.log();
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_TRUE(contains(metrics, "dcmstreams_actor_restarts_total{actor=\"stream_mailbox:slow\"} 2"))
      << metrics;
  EXPECT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-mailbox/none").status, 404);
}

TEST(supervision, test_hooks_are_off_unless_asked_for) {
  temp_dir root;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "copy", "COPYAE", R"("command": ["/bin/true"])");
  node.start();
  EXPECT_NE(http_request(node.web_port(), "POST", "/api/v1/test/wedge-listener").status, 200);
  EXPECT_FALSE(contains(node.log(), "test hooks are on"));
}

TEST(supervision, the_watchdog_restarts_a_listener_that_stopped_answering) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.2;
  options.test_hooks = true;
  options.dicom_json = R"(, "watchdog_interval_s": 1, "acse_timeout_s": 2)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])");
  node.start();
  // The node's own AE title answers C-ECHO (the watchdog's probe) and
  // stores nothing.
  auto echoed = echo(node, "DCMSTREAMS");
  ASSERT_EQ(echoed.exit_code, 0) << echoed.output << node.log();
  synth_study(scratch / "own", 1, 16);
  auto refused = run({"storescu", "-aec", "DCMSTREAMS", "+sd", "+r", "127.0.0.1",
                      std::to_string(node.port()), (scratch / "own").string()},
                     20s, {{"TCP_NODELAY", "1"}});
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_TRUE(node.incoming_files().empty());

  ASSERT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/wedge-listener").status, 200);
  EXPECT_NE(echo(node, "COPYAE").exit_code, 0) << "a wedged listener still answered";
  ASSERT_TRUE(node.wait_for_log("restarting it", 20s)) << node.log();
  ASSERT_TRUE(eventually([&] { return echo(node, "COPYAE").exit_code == 0; }, 20s)) << node.log();
  EXPECT_TRUE(
      contains(http_get(node.web_port(), "/metrics").body, "dcmstreams_listener_restarts_total 1"))
      << node.log();
  // Service is back: a study goes through to a finished job.
  send_synthetic_study(node, scratch / "study", "COPYAE");
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  EXPECT_EQ(http_get(node.web_port(), "/readyz").status, 200);
}

TEST(supervision, a_dead_core_actor_stops_the_node_for_systemd_and_a_restart_resumes) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.2;
  options.test_hooks = true;
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])");
  node.start();
  EXPECT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-actor/nobody").status, 404);
  ASSERT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-actor/router").status, 200);
  ASSERT_TRUE(eventually([&] { return !node.running(); }, 20s)) << node.log();
  EXPECT_EQ(node.stop(), 1) << node.log();
  EXPECT_TRUE(contains(node.log(), "the router actor stopped")) << node.log();
  // What systemd does next: start it again. It works as before.
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE");
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
}
