// Head and workers as real processes on loopback (docs/cluster.md): workers
// join and are listed with their slots; one killed is lost at once, one
// stopped (SIGSTOP) once it leaves heartbeats unanswered, and is back when
// it goes on; after the head restarts, workers join again by themselves; a
// worker of another wire version or with a name in use is refused, saying
// why.

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <csignal>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A head whose heartbeats are quick, so that tests need not wait long.
struct cluster_fixture : ::testing::Test {
  temp_dir root;
  std::uint16_t cluster_port = free_port();
  std::unique_ptr<test_node> head;
  std::vector<std::unique_ptr<process>> workers;

  void SetUp() override {
    node_options options;
    options.extra_config = "\"cluster\": {\"port\": " + std::to_string(cluster_port) +
                           ", \"heartbeat_s\": 0.2, \"lost_after_s\": 1}";
    head = std::make_unique<test_node>(root / "head", options);
    head->start();
  }

  process& start_worker(const std::string& name, int slots,
                        std::map<std::string, std::string> env = {}) {
    env["TCP_NODELAY"] = "1";
    workers.push_back(std::make_unique<process>(
        process_options{{dcmstreams_binary().string(), "worker", "--join",
                         "127.0.0.1:" + std::to_string(cluster_port), "--slots",
                         std::to_string(slots), "--name", name},
                        env,
                        {},
                        root / (name + "-" + std::to_string(workers.size()) + ".log")}));
    return *workers.back();
  }

  /// The head's list of workers, by name.
  std::map<std::string, json::value> listed() {
    auto reply = http_get(head->web_port(), "/api/v1/workers");
    std::map<std::string, json::value> by_name;
    auto body = json::parse(reply.body, "/api/v1/workers");
    if (reply.status != 200 || !body)
      return by_name;
    for (auto& w : (*body)["workers"])
      by_name[w["name"].get<std::string>()] = w;
    return by_name;
  }

  std::string state_of(const std::string& name) {
    auto workers = listed();
    auto it = workers.find(name);
    return it == workers.end() ? "" : it->second["state"].get<std::string>();
  }
};

} // namespace

TEST_F(cluster_fixture, workers_join_and_are_listed_with_their_slots) {
  start_worker("w1", 2);
  start_worker("w2", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 2; }, 10s)) << head->log();
  auto workers = listed();
  EXPECT_EQ(workers["w1"]["state"], "joined");
  EXPECT_EQ(workers["w1"]["slots"], 2);
  EXPECT_EQ(workers["w2"]["slots"], 1);
  EXPECT_EQ(workers["w1"]["pid"], this->workers[0]->pid());
  EXPECT_EQ(workers["w1"]["running"], 0);
  auto metrics = http_get(head->web_port(), "/metrics").body;
  EXPECT_TRUE(contains(metrics, "dcmstreams_worker_up{worker=\"w1\"} 1")) << metrics;
  EXPECT_TRUE(contains(metrics, "dcmstreams_worker_slots{worker=\"w1\"} 2")) << metrics;
  EXPECT_TRUE(contains(head->log(), "worker w2 joined: 1 slots")) << head->log();
}

TEST_F(cluster_fixture, a_killed_worker_is_lost_at_once_and_a_stopped_one_once_it_is_silent) {
  auto& killed = start_worker("killed", 1);
  auto& stopped = start_worker("stopped", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 2; }, 10s)) << head->log();

  killed.signal(SIGKILL);
  // The connection closes with the process: no heartbeat needs to fail.
  EXPECT_TRUE(eventually([&] { return state_of("killed") == "lost"; }, 900ms)) << head->log();
  EXPECT_TRUE(contains(head->log(), "worker killed (pid")) << head->log();
  EXPECT_TRUE(contains(head->log(), "its connection closed")) << head->log();

  stopped.signal(SIGSTOP);
  auto stopped_at = std::chrono::steady_clock::now();
  // lost_after_s is 1 s; heartbeats go every 0.2 s.
  EXPECT_TRUE(eventually([&] { return state_of("stopped") == "lost"; }, 5s)) << head->log();
  EXPECT_GE(std::chrono::steady_clock::now() - stopped_at, 900ms) << "lost before lost_after_s";
  EXPECT_TRUE(contains(head->log(), "no answer to a heartbeat")) << head->log();
  stopped.signal(SIGCONT);
  EXPECT_TRUE(eventually([&] { return state_of("stopped") == "joined"; }, 5s)) << head->log();
  auto metrics = http_get(head->web_port(), "/metrics").body;
  EXPECT_TRUE(
      contains(metrics, "dcmstreams_worker_losses_total{worker=\"stopped\",reason=\"silent\"} 1"))
      << metrics;
  EXPECT_TRUE(contains(
      metrics, "dcmstreams_worker_losses_total{worker=\"killed\",reason=\"disconnected\"} 1"))
      << metrics;
}

TEST_F(cluster_fixture, workers_join_again_by_themselves_after_the_head_restarts) {
  auto& worker = start_worker("w1", 1);
  ASSERT_TRUE(eventually([&] { return state_of("w1") == "joined"; }, 10s)) << head->log();
  head->kill();
  head->start();
  EXPECT_TRUE(eventually([&] { return state_of("w1") == "joined"; }, 15s))
      << head->log() << worker.output();
  EXPECT_TRUE(worker.running());
  EXPECT_TRUE(contains(worker.output(), "lost the head at 127.0.0.1:")) << worker.output();
}

TEST_F(cluster_fixture, a_worker_of_another_wire_version_is_refused_saying_so) {
  auto& other = start_worker(
      "old", 1,
      {{"DCMSTREAMS_TEST_HOOKS", "1"}, {"DCMSTREAMS_TEST_WIRE_VERSION", "dcmstreams-cluster-0"}});
  EXPECT_TRUE(eventually([&] { return contains(other.output(), "cannot join the head"); }, 10s))
      << other.output();
  EXPECT_TRUE(contains(other.output(), "incompatible_application_ids")) << other.output();
  EXPECT_TRUE(contains(other.output(), "wire version is not dcmstreams-cluster-0"))
      << other.output();
  EXPECT_TRUE(listed().empty());
  EXPECT_TRUE(other.running()) << "it keeps trying, for a head of its version may come";
}

TEST_F(cluster_fixture, a_second_worker_with_a_name_in_use_is_refused_saying_so) {
  start_worker("twin", 1);
  ASSERT_TRUE(eventually([&] { return state_of("twin") == "joined"; }, 10s)) << head->log();
  auto& second = start_worker("twin", 1);
  EXPECT_TRUE(eventually([&] { return contains(second.output(), "has joined already"); }, 10s))
      << second.output();
  EXPECT_TRUE(contains(second.output(), "give each worker a name of its own")) << second.output();
  EXPECT_EQ(listed()["twin"]["pid"], workers[0]->pid());
}

TEST(cluster, a_worker_without_a_head_address_is_told_how_to_call_it) {
  auto missing = run({dcmstreams_binary().string(), "worker"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.output, "--join HOST:PORT is required")) << missing.output;
  auto wrong = run({dcmstreams_binary().string(), "worker", "--join", "head"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_TRUE(contains(wrong.output, "--join head is not HOST:PORT")) << wrong.output;
}
