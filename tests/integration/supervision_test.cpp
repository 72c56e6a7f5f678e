// Self-healing inside a running node: a stream mailbox that dies is
// restarted and its jobs still run, each once; every supervised actor comes
// back with its state from the database; a crash loop stops the node for
// systemd; a listener that stops answering is restarted by the C-ECHO
// watchdog. Faults come from the test hooks of DCMSTREAMS_TEST_HOOKS=1.

#include "pipeline/jobs/database.hpp"

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <thread>

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

/// Options of a node with the test hooks on.
node_options hooked_options(double quiet_period_s = 0.2) {
  node_options options;
  options.quiet_period_s = quiet_period_s;
  options.test_hooks = true;
  return options;
}

/// A node with the test hooks whose stream "slow" (SLOWAE) takes a second
/// per job and appends a line to runs.txt, outside the job, at each run.
struct slow_stream_node {
  slow_stream_node() {
    write_stream(node.streams_dir(), "slow", "SLOWAE",
                 R"("command": ["/bin/sh", "-c", "echo run >> )" + runs.string() +
                     R"(; sleep 1; cp -r \"$0\"/. \"$1\""])");
    node.start();
  }

  /// Four studies: job 1 runs, jobs 2-4 wait.
  void queue_four_jobs() {
    for (int i = 0; i < 4; ++i)
      send_synthetic_study(node, scratch / ("study" + std::to_string(i)), "SLOWAE");
    ASSERT_TRUE(node.wait_for_log("job 4 queued", 20s)) << node.log();
    ASSERT_TRUE(node.wait_for_log("job 1 of stream slow starts", 20s)) << node.log();
  }

  /// `count` jobs finished, each a success that ran exactly once.
  void expect_each_job_ran_once(std::size_t count) {
    ASSERT_TRUE(node.wait_for_finished_jobs(count, 60s)) << node.log();
    for (auto& dir : node.job_dirs())
      EXPECT_EQ(test_node::job_info(dir, "state"), "success") << dir << node.log();
    std::string expected;
    for (std::size_t i = 0; i < count; ++i)
      expected += "run\n";
    EXPECT_EQ(read_file(runs), expected) << node.log();
  }

  temp_dir root, scratch;
  fs::path runs = scratch / "runs.txt";
  test_node node{root.path(), hooked_options()};
};

} // namespace

TEST(supervision, a_killed_stream_mailbox_comes_back_and_every_job_runs_once) {
  slow_stream_node slow;
  auto& node = slow.node;
  slow.queue_four_jobs();

  // Killed while job 1 runs and jobs 2-4 wait.
  auto killed = http_request(node.web_port(), "POST", "/api/v1/test/kill-mailbox/slow");
  ASSERT_EQ(killed.status, 200) << killed.body;
  EXPECT_TRUE(node.wait_for_log("the mailbox of stream slow stopped", 10s)) << node.log();
  slow.expect_each_job_ran_once(4);
  EXPECT_TRUE(contains(node.log(), "in 0.5 s (restart 1 in ten minutes)")) << node.log();

  // A second death in a row waits twice as long; the stream still works.
  killed = http_request(node.web_port(), "POST", "/api/v1/test/kill-mailbox/slow");
  ASSERT_EQ(killed.status, 200) << killed.body;
  EXPECT_TRUE(node.wait_for_log("in 1.0 s (restart 2 in ten minutes)", 10s)) << node.log();
  send_synthetic_study(node, slow.scratch / "after", "SLOWAE");
  slow.expect_each_job_ran_once(5);
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
  auto options = hooked_options();
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

namespace {

/// Kills a supervised actor through the test hook, waiting while it is still
/// restarting from an earlier kill (409).
bool kill_actor(const test_node& node, const std::string& name) {
  return eventually(
      [&] {
        return http_request(node.web_port(), "POST", "/api/v1/test/kill-actor/" + name).status ==
               200;
      },
      40s);
}

std::string restarts_of(const std::string& actor, int count) {
  return "dcmstreams_actor_restarts_total{actor=\"" + actor + "\"} " + std::to_string(count);
}

bool metric_shows(const test_node& node, const std::string& line) {
  return eventually([&] { return contains(http_get(node.web_port(), "/metrics").body, line); },
                    20s);
}

const std::string copy_command = R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])";

std::string destination_at(std::uint16_t port) {
  return R"({"IP": "127.0.0.1", "PORT": )" + std::to_string(port) + R"(, "AETitleTo": "PEER"})";
}

} // namespace

TEST(supervision, every_supervised_actor_comes_back_and_the_node_goes_on) {
  temp_dir root, scratch;
  storescp_peer peer{scratch.path()};
  auto options = hooked_options();
  options.routing_json = R"({"routing": [{"name": "all", "AETitleIn": ".*",
    "send": [{"success": )" +
                         destination_at(peer.port()) + "}]}]}";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  EXPECT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-actor/nobody").status, 404);
  for (std::string name :
       {"job_store", "router", "job_manager", "assembler", "scrubber", "streams_watcher"}) {
    ASSERT_TRUE(kill_actor(node, name)) << name << node.log();
    EXPECT_TRUE(node.wait_for_log("the " + name + " actor is back", 20s)) << node.log();
    EXPECT_TRUE(metric_shows(node, restarts_of(name, 1))) << name;
  }
  // A request that comes while the job store restarts waits for the new one.
  ASSERT_TRUE(kill_actor(node, "job_store"));
  auto jobs = http_get(node.web_port(), "/api/v1/jobs");
  EXPECT_EQ(jobs.status, 200) << jobs.body << node.log();
  EXPECT_TRUE(metric_shows(node, restarts_of("job_store", 2)));
  EXPECT_TRUE(contains(node.log(), "the job_store actor is back")) << node.log();
  EXPECT_TRUE(contains(node.log(), "database in 1.0 s (restart 2 in ten minutes)")) << node.log();

  // Ingest, jobs and routing work with every actor a restarted one.
  send_synthetic_study(node, scratch / "study", "COPYAE", 3);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  EXPECT_EQ(test_node::job_info(node.job_dirs().front(), "state"), "success");
  EXPECT_TRUE(eventually([&] { return peer.files().size() == 3; }, 30s)) << node.log();
  EXPECT_TRUE(node.running());
  EXPECT_EQ(node.stop(), 0) << node.log();
}

TEST(supervision, a_restarted_assembler_rebuilds_its_pending_studies_from_the_incoming_folder) {
  temp_dir root, scratch;
  test_node node{root.path(), hooked_options(3)};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 3);
  ASSERT_TRUE(kill_actor(node, "assembler"));
  ASSERT_TRUE(node.wait_for_log("restarted with 1 pending studies (3 instances", 20s))
      << node.log();
  EXPECT_TRUE(contains(http_get(node.web_port(), "/api/v1/studies").body, "\"instances\":3"));
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  EXPECT_EQ(node.job_dirs().size(), 1u);
  EXPECT_EQ(test_node::input_files(node.job_dirs().front()).size(), 3u);
  EXPECT_TRUE(node.incoming_files().empty());
}

TEST(supervision, a_restarted_job_manager_loses_no_job_and_runs_none_twice) {
  slow_stream_node slow;
  auto& node = slow.node;
  slow.queue_four_jobs();
  // Killed while job 1 runs and jobs 2-4 wait: their mailbox dies with it.
  ASSERT_TRUE(kill_actor(node, "job_manager"));
  slow.expect_each_job_ran_once(4);
  EXPECT_TRUE(contains(node.log(), "the job manager is back")) << node.log();
}

TEST(supervision, a_restarted_sender_and_router_resume_a_waiting_send_and_deliver_it_once) {
  temp_dir root, scratch;
  auto port = free_port();
  auto options = hooked_options();
  options.extra_config =
      R"("sending": {"retry_initial_s": 0.5, "retry_factor": 2, "retry_max_s": 2, "max_attempts": 40})";
  options.routing_json = R"({"routing": [{"name": "all", "AETitleIn": ".*",
    "send": [{"success": )" +
                         destination_at(port) + "}]}]}";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 3);
  // Nobody listens yet: the send waits and retries.
  ASSERT_TRUE(node.wait_for_log("trying again in", 30s)) << node.log();
  auto db = database::open(node.data_dir() / "dcmstreams.db", false);
  ASSERT_TRUE(db);
  auto waiting = (*db)->recent_sends(10);
  ASSERT_TRUE(waiting && waiting->size() == 1);
  auto destination = waiting->front().destination;
  // Its sender dies: a new one takes the send over; then the router dies.
  EXPECT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-sender/nowhere").status, 404);
  ASSERT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/kill-sender/" + destination).status,
            200);
  EXPECT_TRUE(metric_shows(node, restarts_of("sender:" + destination, 1)));
  ASSERT_TRUE(node.wait_for_log("trying again in", 30s)) << node.log();
  ASSERT_TRUE(kill_actor(node, "router"));
  ASSERT_TRUE(node.wait_for_log("the router actor is back", 20s)) << node.log();
  storescp_peer late{scratch.path(), {}, port};
  ASSERT_TRUE(eventually([&] { return late.files().size() == 3; }, 30s)) << node.log();
  ASSERT_TRUE(node.wait_for_log(" done: 3 files stored", 20s)) << node.log();
  std::this_thread::sleep_for(2s); // a second sender would deliver again by now
  EXPECT_EQ(late.files().size(), 3u);
  auto sends = (*db)->recent_sends(10);
  ASSERT_TRUE(sends);
  ASSERT_EQ(sends->size(), 1u) << "the job was routed once";
  EXPECT_EQ(sends->front().state, send_state::done);
  EXPECT_EQ(sends->front().files_sent, 3);
  EXPECT_TRUE(metric_shows(node, "dcmstreams_send_queue_depth{destination=\"" +
                                     sends->front().destination + "\"} 0"))
      << http_get(node.web_port(), "/metrics").body << node.log();
}

TEST(supervision, a_supervisor_gives_up_on_a_crash_loop_and_the_node_stops_for_systemd) {
  temp_dir root, scratch;
  test_node node{root.path(), hooked_options()};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  // Five restarts in ten minutes (after 0.5, 1, 2, 4 and 8 s); the sixth death gives up.
  for (int kill = 1; kill <= 5; ++kill)
    ASSERT_TRUE(kill_actor(node, "scrubber")) << kill << node.log();
  // The sixth: the node may stop before it answers.
  ASSERT_TRUE(eventually(
      [&] {
        return !node.running() ||
               http_request(node.web_port(), "POST", "/api/v1/test/kill-actor/scrubber").status ==
                   200;
      },
      40s))
      << node.log();
  ASSERT_TRUE(eventually([&] { return !node.running(); }, 20s)) << node.log();
  EXPECT_EQ(node.stop(), 1) << node.log();
  EXPECT_TRUE(contains(node.log(), "giving up on restarting it")) << node.log();
  EXPECT_TRUE(contains(node.log(), "the supervisor of the scrubber actor gave up")) << node.log();
  // What systemd does next: start it again. It works as before.
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE");
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
}

TEST(supervision, answers_wait_while_job_creation_is_behind_and_nothing_is_lost) {
  temp_dir root, scratch;
  auto options = hooked_options();
  options.completion_json = R"(, "max_backlog": 10)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])");
  node.start();
  // Job creation stops, as on a disk that stalls; a study of 20 completes
  // and waits for its job: 20 instances, above the limit of 10.
  ASSERT_EQ(http_request(node.web_port(), "POST", "/api/v1/test/stall-job-store/6").status, 200);
  auto first = synth_study(scratch.path() / "first", 20, 16);
  auto sent = run({"storescu", "-aec", "COPYAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), first.string()},
                  30s, {{"TCP_NODELAY", "1"}});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  auto backlog = [&] {
    return metric_sample(http_get(node.web_port(), "/metrics").body,
                         "dcmstreams_intake_backlog_instances");
  };
  ASSERT_TRUE(eventually([&] { return backlog() == 20; }, 10s)) << node.log();
  // The next sender's answers wait for it (each at most 2 s, below senders'
  // DIMSE timeouts) and all of its instances are stored once it catches up.
  auto second = synth_study(scratch.path() / "second", 4, 16);
  auto waited = run({"storescu", "-v", "-aec", "COPYAE", "+sd", "+r", "127.0.0.1",
                     std::to_string(node.port()), second.string()},
                    60s, {{"TCP_NODELAY", "1"}});
  ASSERT_EQ(waited.exit_code, 0) << waited.output;
  std::size_t successes = 0;
  for (auto at = waited.output.find("Received Store Response (Success)"); at != std::string::npos;
       at = waited.output.find("Received Store Response (Success)", at + 1))
    ++successes;
  EXPECT_EQ(successes, 4u) << waited.output;
  ASSERT_TRUE(node.wait_for_log("job creation is behind: 20 instances of completed studies wait "
                                "for their jobs (more than completion.max_backlog, 10)",
                                1s))
      << node.log();
  ASSERT_TRUE(node.wait_for_log("job creation caught up", 20s)) << node.log();
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_GE(metric_sample(metrics, "dcmstreams_ingest_wait_seconds_total"), 1.9)
      << "the first answer after the stall waits its whole 2 s";
  EXPECT_EQ(metric_sample(metrics, "dcmstreams_instances_received_total{called_ae=\"COPYAE\"}"),
            24);
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 30s)) << node.log();
  EXPECT_TRUE(eventually([&] { return backlog() == 0; }, 5s));
  std::size_t inputs = 0;
  for (auto& dir : node.job_dirs())
    inputs += test_node::input_files(dir).size();
  EXPECT_EQ(inputs, 24u);
}
