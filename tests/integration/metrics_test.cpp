// /metrics of a running node: promtool accepts the exposition, values move
// when a study is sent, and a real Prometheus server scrapes the node and
// answers a PromQL query with the number of instances sent.

#include "pipeline/foundation/files.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <regex>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(metrics, promtool_accepts_the_exposition_and_values_follow_a_study) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  auto before = http_get(node.web_port(), "/metrics");
  ASSERT_EQ(before.status, 200);
  EXPECT_EQ(before.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  write_file(scratch / "before.txt", before.body);
  auto checked =
      run({"/bin/sh", "-c", "promtool check metrics < " + (scratch / "before.txt").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output << before.body;

  send_synthetic_study(node, scratch / "study", "COPYAE", 7, 32);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  std::string after;
  ASSERT_TRUE(eventually(
      [&] {
        after = http_get(node.web_port(), "/metrics").body;
        return metric_sample(after, "dcmstreams_job_duration_seconds_count{stream=\"copy\"}") == 1;
      },
      10s))
      << after;
  EXPECT_EQ(metric_sample(after, "dcmstreams_instances_received_total{called_ae=\"COPYAE\"}"), 7);
  EXPECT_EQ(metric_sample(after, "dcmstreams_jobs_total{stream=\"copy\",result=\"success\"}"), 1);
  EXPECT_EQ(metric_sample(after, "dcmstreams_associations_total{result=\"accepted\"}"), 1);
  EXPECT_GT(metric_sample(after, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(metric_sample(after, "process_open_fds"), 3);
  write_file(scratch / "after.txt", after);
  checked = run({"/bin/sh", "-c", "promtool check metrics < " + (scratch / "after.txt").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output << after;
}

TEST(metrics, a_prometheus_server_scrapes_the_node_and_counts_the_instances) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 5, 32);

  auto prometheus_port = free_port();
  write_file(scratch / "prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "scrape_configs:\n  - job_name: dcmstreams\n    static_configs:\n"
             "      - targets: ['127.0.0.1:" +
                 std::to_string(node.web_port()) + "']\n");
  process prometheus{{{"prometheus", "--config.file=" + (scratch / "prometheus.yml").string(),
                       "--storage.tsdb.path=" + (scratch / "tsdb").string(),
                       "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)},
                      {},
                      scratch.path(),
                      scratch / "prometheus.log"}};
  std::string targets;
  ASSERT_TRUE(eventually(
      [&] {
        targets = http_get(prometheus_port, "/api/v1/targets").body;
        return targets.find("\"health\":\"up\"") != std::string::npos;
      },
      30s))
      << targets << read_file(scratch / "prometheus.log");
  std::string answer;
  ASSERT_TRUE(eventually(
      [&] {
        answer = http_get(prometheus_port,
                          "/api/v1/query?query=sum(dcmstreams_instances_received_total)")
                     .body;
        return answer.find("\"5\"]") != std::string::npos;
      },
      30s))
      << answer;
  auto up = http_get(prometheus_port, "/api/v1/query?query=up%7Bjob%3D%22dcmstreams%22%7D").body;
  EXPECT_NE(up.find("\"1\"]"), std::string::npos) << up;
}
