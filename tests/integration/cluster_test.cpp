// Head and workers as real processes on loopback (docs/cluster.md): workers
// join and are listed with their slots; one killed is lost at once, one
// stopped (SIGSTOP) once it leaves heartbeats unanswered, and is back when
// it goes on; after the head restarts, workers join again by themselves; a
// worker of another wire version or with a name in use is refused, saying
// why. Jobs run on workers with their files moved in chunks: spread over
// the workers, results as from a run on the head and routed from there; a
// worker killed or stopped mid-job gives the job to another, which runs it
// once more and routes it once; a late result is thrown away; a head killed
// mid-job runs it again after its restart.

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <set>
#include <thread>

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
  std::map<std::string, process*> named; // the last worker started with each name

  void SetUp() override {
    node_options options;
    options.extra_config = "\"cluster\": {\"port\": " + std::to_string(cluster_port) +
                           ", \"heartbeat_s\": 0.2, \"lost_after_s\": 1" + more_cluster() + "}";
    options.routing_json = routing();
    head = std::make_unique<test_node>(root / "head", options);
    write_streams(head->streams_dir());
    head->start();
  }

  virtual std::string more_cluster() { return ""; }
  virtual std::string routing() { return ""; }
  virtual void write_streams(const fs::path&) {}

  /// `prefix`: a command the worker runs under (a mount namespace);
  /// `more`: options after the usual ones (TLS).
  process& start_worker(const std::string& name, int slots,
                        std::map<std::string, std::string> env = {},
                        std::vector<std::string> prefix = {}, std::vector<std::string> more = {}) {
    env["TCP_NODELAY"] = "1";
    auto argv = prefix;
    for (auto& arg : {dcmstreams_binary().string(), std::string{"worker"}, std::string{"--join"},
                      "127.0.0.1:" + std::to_string(cluster_port), std::string{"--slots"},
                      std::to_string(slots), std::string{"--name"}, name, std::string{"--data"},
                      (root / (name + "-data")).string()})
      argv.push_back(arg);
    argv.insert(argv.end(), more.begin(), more.end());
    workers.push_back(std::make_unique<process>(process_options{
        argv, env, {}, root / (name + "-" + std::to_string(workers.size()) + ".log")}));
    named[name] = workers.back().get();
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

/// The head runs no jobs itself (cluster.head_slots 0): workers run them,
/// and results go from the head to a storescp.
struct cluster_jobs : cluster_fixture {
  temp_dir scratch;
  storescp_peer destination{scratch.path()};

  std::string more_cluster() override { return ", \"head_slots\": 0"; }
  std::string routing() override {
    return R"({"routing": [{"RouteDirectory": "OUTPUT", "send": [{"success": {"IP": "127.0.0.1", )"
           R"("PORT": )" +
           std::to_string(destination.port()) + R"(, "AETitleTo": "PACS"}}]}]})";
  }
  void write_streams(const fs::path& dir) override {
    write_stream(dir, "smooth", "SMOOTH",
                 R"("concurrency": 4, "pipeline": [{"kernel": "gaussian", "sigma_mm": 1.5}])");
    // Long enough to be caught running; copies its inputs as results.
    write_stream(dir, "slow", "SLOW",
                 R"("command": ["/bin/sh", "-c", "sleep 2; cp \"$0\"/* \"$1\"/"])");
    write_stream(dir, "anon", "ANON", R"("pipeline": [{"kernel": "deidentify"}])");
  }

  void send_study(const std::string& ae, int instances, int rows, const std::string& name) {
    auto study = synth_study(scratch / name, instances, rows);
    ASSERT_EQ(run({"storescu", "-aec", ae, "+sd", "+r", "127.0.0.1", std::to_string(head->port()),
                   study.string()})
                  .exit_code,
              0);
  }

  json::value job(int id) {
    auto reply = http_get(head->web_port(), "/api/v1/jobs/" + std::to_string(id));
    auto body = json::parse(reply.body, "job");
    return reply.status == 200 && body ? *body : json::value{};
  }

  std::string job_state(int id) {
    auto j = job(id);
    return j.is_object() ? j["state"].get<std::string>() : "";
  }

  /// The worker job `id` runs on now ("" until it runs on one).
  std::string running_on(int id) {
    auto j = job(id);
    return j.is_object() && j["state"] == "running" ? j["worker"].get<std::string>() : "";
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

TEST_F(cluster_jobs, jobs_spread_over_the_workers_and_their_results_are_routed_from_the_head) {
  start_worker("w1", 1);
  start_worker("w2", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 2; }, 10s)) << head->log();
  for (int i = 0; i < 4; ++i)
    send_study("SMOOTH", 6, 64, "s" + std::to_string(i));
  ASSERT_TRUE(head->wait_for_finished_jobs(4, 60s)) << head->log();
  std::set<std::string> used;
  for (int id = 1; id <= 4; ++id) {
    auto j = job(id);
    ASSERT_EQ(j["state"], "success") << j.dump() << head->log();
    used.insert(j["worker"].get<std::string>());
    EXPECT_EQ(j["output_files"], 6);
    EXPECT_EQ(j["lost_runs"], 0);
  }
  EXPECT_EQ(used, (std::set<std::string>{"w1", "w2"})) << "least loaded: both workers run jobs";
  auto dir = head->data_dir() / "jobs" / "1";
  auto log = read_file(dir / "processing.log");
  EXPECT_TRUE(contains(log, "runs on worker w")) << log;
  EXPECT_TRUE(contains(log, "gaussian sigma 1.5 mm done"))
      << "the worker's lines come back: " << log;
  EXPECT_EQ(read_file(dir / "proc.json"), "[{\"success\":\"success\",\"message\":\"\"}]\n");
  expect_valid_dicom(files_under(dir / "OUTPUT"));
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 24; }, 30s))
      << destination.files().size() << "\n"
      << head->log();
  for (auto& name : {"w1", "w2"})
    EXPECT_TRUE(
        eventually([&] { return files_under(root / (name + std::string("-data"))).empty(); }, 5s))
        << "a worker keeps no files of runs whose results the head took";
}

TEST_F(cluster_jobs, a_job_whose_worker_is_killed_runs_once_more_elsewhere_and_is_routed_once) {
  start_worker("w1", 1);
  start_worker("w2", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 2; }, 10s)) << head->log();
  send_study("SLOW", 5, 32, "study");
  std::string first;
  ASSERT_TRUE(eventually([&] { return !(first = running_on(1)).empty(); }, 20s)) << head->log();
  std::this_thread::sleep_for(500ms); // inputs over, the program sleeping
  named.at(first)->signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s)) << head->log();
  auto j = job(1);
  EXPECT_NE(j["worker"], first) << j.dump();
  EXPECT_EQ(j["lost_runs"], 1);
  EXPECT_EQ(j["output_files"], 5);
  auto log = read_file(head->data_dir() / "jobs" / "1" / "processing.log");
  EXPECT_TRUE(contains(log, "worker " + first + " was lost during attempt")) << log;
  EXPECT_TRUE(contains(log, "the job runs again")) << log;
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 5; }, 30s)) << head->log();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(destination.files().size(), 5u) << "routed once";
  auto metrics = http_get(head->web_port(), "/metrics").body;
  EXPECT_TRUE(contains(metrics, "dcmstreams_jobs_requeued_total{stream=\"slow\"} 1")) << metrics;
  EXPECT_TRUE(contains(metrics, "dcmstreams_jobs_total{stream=\"slow\",result=\"success\"} 1"))
      << metrics;
}

TEST_F(cluster_jobs, a_stopped_worker_s_job_runs_elsewhere_and_its_late_result_is_thrown_away) {
  start_worker("w1", 1);
  start_worker("w2", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 2; }, 10s)) << head->log();
  send_study("SLOW", 4, 32, "study");
  std::string first;
  ASSERT_TRUE(eventually([&] { return !(first = running_on(1)).empty(); }, 20s)) << head->log();
  auto& stopped = *named.at(first);
  stopped.signal(SIGSTOP);
  auto stopped_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s)) << head->log();
  auto j = job(1);
  EXPECT_NE(j["worker"], first);
  EXPECT_EQ(j["lost_runs"], 1);
  // lost_after_s 1 (+ one heartbeat), then the 2 s program elsewhere.
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, 10s);
  stopped.signal(SIGCONT);
  EXPECT_TRUE(
      eventually([&] { return contains(stopped.output(), "its result is thrown away"); }, 15s))
      << stopped.output();
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 4; }, 30s)) << head->log();
  EXPECT_TRUE(eventually([&] { return state_of(first) == "joined"; }, 10s));
  std::this_thread::sleep_for(3s); // the stopped run's program ends meanwhile
  EXPECT_EQ(destination.files().size(), 4u) << "routed once";
  EXPECT_EQ(files_under(head->data_dir() / "jobs" / "1" / "OUTPUT").size(), 4u);
  EXPECT_EQ(job(1)["worker"], j["worker"]) << "the late result changed nothing";
}

TEST_F(cluster_jobs, jobs_wait_for_a_worker_and_a_head_killed_mid_job_runs_it_after_a_restart) {
  send_study("SLOW", 3, 32, "study");
  ASSERT_TRUE(head->wait_for_log("waits for a worker: cluster.head_slots is 0", 20s))
      << head->log();
  EXPECT_EQ(job_state(1), "queued");
  auto& worker = start_worker("w1", 1);
  ASSERT_TRUE(eventually([&] { return running_on(1) == "w1"; }, 20s)) << head->log();
  head->kill();
  head->start();
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 40s))
      << head->log() << worker.output();
  EXPECT_TRUE(contains(worker.output(), "its result is thrown away")) << worker.output();
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 3; }, 30s)) << head->log();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(destination.files().size(), 3u) << "routed once";
}

TEST_F(cluster_jobs, de_identifying_jobs_run_on_the_head_which_holds_the_secret) {
  start_worker("w1", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 1; }, 10s)) << head->log();
  send_study("ANON", 2, 16, "study");
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s)) << head->log();
  EXPECT_EQ(job(1)["worker"], "") << "head_slots 0 does not send the node's secret away";
}

/// Head and workers see the data folder at the same path (cluster.shared_data).
struct cluster_shared : cluster_jobs {
  std::string more_cluster() override { return ", \"head_slots\": 0, \"shared_data\": true"; }
};

TEST_F(cluster_shared, a_worker_that_sees_the_data_folder_moves_no_files) {
  start_worker("w1", 1);
  ASSERT_TRUE(eventually([&] { return listed().size() == 1; }, 10s)) << head->log();
  send_study("SMOOTH", 6, 64, "study");
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s)) << head->log();
  auto dir = head->data_dir() / "jobs" / "1";
  auto log = read_file(dir / "processing.log");
  EXPECT_TRUE(contains(log, "inputs and results through the shared data folder")) << log;
  EXPECT_FALSE(contains(log, "worker: inputs")) << "nothing moved in chunks: " << log;
  EXPECT_TRUE(contains(log, "gaussian sigma 1.5 mm done")) << log;
  EXPECT_EQ(files_under(dir / "OUTPUT").size(), 6u);
  EXPECT_TRUE(files_under(dir / ".attempt-1").empty()) << "the attempt's folder is gone";
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 6; }, 30s)) << head->log();
  EXPECT_TRUE(files_under(root / "w1-data").empty());
}

TEST_F(cluster_shared, a_worker_that_sees_another_folder_at_that_path_takes_files_in_chunks) {
  // The worker's own mount namespace hides the head's data folder under an
  // empty tmpfs: the same path, another folder.
  auto hidden = head->data_dir().string();
  auto& worker =
      start_worker("w1", 1, std::map<std::string, std::string>{},
                   std::vector<std::string>{"unshare", "-m", "sh", "-c",
                                            "mount -t tmpfs none \"$0\" && mkdir -p \"$0/jobs\" && "
                                            "exec \"$@\"",
                                            hidden});
  ASSERT_TRUE(eventually([&] { return listed().size() == 1; }, 10s))
      << head->log() << worker.output();
  send_study("SMOOTH", 6, 64, "study");
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s))
      << head->log() << worker.output();
  EXPECT_TRUE(contains(worker.output(), "is not shared with this worker")) << worker.output();
  auto log = read_file(head->data_dir() / "jobs" / "1" / "processing.log");
  EXPECT_TRUE(contains(log, "worker: inputs 6 files")) << log;
  EXPECT_EQ(files_under(head->data_dir() / "jobs" / "1" / "OUTPUT").size(), 6u);
}

/// Mutual TLS: the head and its workers show certificates of one cluster CA.
struct cluster_over_tls : cluster_jobs {
  fs::path ca = root / "ca";
  fs::path certificates = root / "certificates";

  void SetUp() override {
    auto binary = dcmstreams_binary().string();
    ASSERT_EQ(run({binary, "cluster-ca", "init", "--dir", ca.string()}).exit_code, 0);
    for (auto name : {"head", "w1"}) {
      auto signed_one = run({binary, "cluster-ca", "sign", name, "--dir", ca.string(), "--out",
                             certificates.string()});
      ASSERT_EQ(signed_one.exit_code, 0) << signed_one.output;
    }
    // A certificate of another CA, as an outsider would have.
    ASSERT_EQ(run({binary, "cluster-ca", "init", "--dir", (root / "other").string()}).exit_code, 0);
    ASSERT_EQ(run({binary, "cluster-ca", "sign", "w1", "--dir", (root / "other").string(), "--out",
                   (root / "outsider").string()})
                  .exit_code,
              0);
    cluster_jobs::SetUp();
  }

  std::string more_cluster() override {
    return ", \"head_slots\": 0, \"tls\": {\"certificate\": \"" +
           (certificates / "head.pem").string() + "\", \"key\": \"" +
           (certificates / "head.key").string() + "\", \"ca\": \"" + (ca / "ca.pem").string() +
           "\"}";
  }

  std::vector<std::string> tls_options(const fs::path& dir, const std::string& name) {
    return {"--certificate", (dir / (name + ".pem")).string(),
            "--key",         (dir / (name + ".key")).string(),
            "--ca",          (ca / "ca.pem").string()};
  }
};

TEST_F(cluster_over_tls, workers_of_the_cluster_ca_run_jobs_and_outsiders_are_refused) {
  auto check = run({"openssl", "verify", "-CAfile", (ca / "ca.pem").string(),
                    (certificates / "w1.pem").string()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_TRUE(head->wait_for_log("over mutual TLS", 5s)) << head->log();
  start_worker("w1", 1, {}, {}, tls_options(certificates, "w1"));
  ASSERT_TRUE(eventually([&] { return state_of("w1") == "joined"; }, 10s)) << head->log();
  auto& outsider = start_worker("outsider", 1, {}, {}, tls_options(root / "outsider", "w1"));
  auto& plain = start_worker("plain", 1);
  send_study("SMOOTH", 4, 32, "study");
  ASSERT_TRUE(eventually([&] { return job_state(1) == "success"; }, 30s)) << head->log();
  EXPECT_EQ(job(1)["worker"], "w1");
  EXPECT_TRUE(eventually([&] { return destination.files().size() == 4; }, 30s)) << head->log();
  // The refused ones try again after 1, 2 and 4 s: the good worker's
  // connection outlives every failed handshake.
  std::this_thread::sleep_for(4s);
  EXPECT_TRUE(contains(outsider.output(), "disconnect_during_handshake")) << outsider.output();
  EXPECT_TRUE(contains(outsider.output(), "signed by the same cluster CA")) << outsider.output();
  EXPECT_TRUE(contains(plain.output(), "a head with cluster.tls refuses a worker without"))
      << plain.output();
  auto workers = listed();
  EXPECT_EQ(workers.size(), 1u) << "only w1 joined";
  EXPECT_EQ(workers["w1"]["joins"], 1) << "w1 never lost its connection:\n" << head->log();
  EXPECT_FALSE(contains(head->log(), "is lost")) << head->log();
}
