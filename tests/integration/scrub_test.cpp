// The scrubber on a small file system of its own (tmpfs mounted by the test):
// above the high-water mark the oldest finished jobs go until the disk is
// below the low mark; pending studies, running jobs and unsent results stay.

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <thread>

#include <fstream>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  if (fs::exists(dir))
    for (auto& e : fs::recursive_directory_iterator(dir))
      n += e.is_regular_file();
  return n;
}

const char* copy_command = R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])";

} // namespace

TEST(scrub, a_full_disk_loses_its_oldest_finished_jobs_and_nothing_else) {
  temp_dir root, scratch;
  small_disk disk{root / "data", 24};
  if (!disk.mounted())
    GTEST_SKIP() << "mounting a tmpfs needs root (CAP_SYS_ADMIN); CI runs as root";
  node_options options;
  options.quiet_period_s = 0.3;
  // A disk this small takes small journal segments.
  options.storage_json = R"(, "scrub_high_pct": 50, "scrub_low_pct": 30, "scrub_interval_s": 0.3,
                            "journal_segment_mb": 1)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  write_stream(node.streams_dir(), "hold", "HOLDAE",
               R"("command": ["/bin/true"], "quiet_period_s": 3600)");
  write_stream(node.streams_dir(), "slow", "SLOWAE", R"("command": ["/bin/sh", "-c", "sleep 60"])");
  node.start();

  // A study still arriving and a job still running are never the scrubber's.
  send_synthetic_study(node, scratch / "held", "HOLDAE", 4, 256);
  send_synthetic_study(node, scratch / "slow", "SLOWAE", 4, 256);
  // Each copy job holds its study twice (store and OUTPUT): about 4 MiB.
  for (int i = 0; i < 3; ++i) {
    send_synthetic_study(node, scratch / ("study" + std::to_string(i)), "COPYAE", 16, 256);
    // By its log line: the scrubber may delete finished jobs before a count sees them.
    ASSERT_TRUE(node.wait_for_log("job " + std::to_string(i + 2) + " of stream copy success", 30s))
        << node.log();
  }
  // Above 50 %: the oldest copy jobs go until the disk is below 30 %. Two
  // take it there, unless the ingest journal holds more free segments at that
  // moment (they count as used): then the newest copy job goes as well.
  std::string jobs, metrics;
  std::size_t kept = 0;
  ASSERT_TRUE(eventually(
      [&] {
        jobs = http_get(node.web_port(), "/api/v1/jobs?state=success").body;
        metrics = http_get(node.web_port(), "/metrics").body;
        kept = contains(jobs, "\"total\":1") ? 1 : contains(jobs, "\"total\":0") ? 0 : 2;
        return kept < 2 &&
               contains(metrics, "dcmstreams_scrubbed_jobs_total{reason=\"disk\"} " +
                                     std::to_string(3 - kept)) &&
               // The deleted jobs' instances left the store too: only the kept jobs' remain.
               count_files(root / "data" / "store") == 16 * kept + 4;
      },
      20s))
      << jobs << metrics << node.log();
  EXPECT_TRUE(contains(node.log(), "above 50.0%: deleting the oldest finished jobs")) << node.log();
  // Oldest first: a copy job that is kept is the newest one.
  if (kept == 1) {
    EXPECT_TRUE(contains(jobs, "{\"id\":4,\"stream\":\"copy\"")) << jobs;
  }
  // The running job and the pending study are never the scrubber's.
  EXPECT_TRUE(contains(http_get(node.web_port(), "/api/v1/jobs?state=running").body,
                       "\"stream\":\"slow\""));
  EXPECT_EQ(node.pending_instances(), 4u);
  auto studies = http_get(node.web_port(), "/api/v1/studies").body;
  EXPECT_TRUE(contains(studies, "\"instances\":4")) << studies;
}

TEST(scrub, jobs_past_their_retention_go_and_a_dry_run_only_says_so) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.3;
  // 0.00002 days is 1.7 s.
  options.storage_json = R"(, "retention_days": 0.00002, "scrub_interval_s": 0.3)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 3, 32);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  // The row goes first, then the folder, then the log line says so.
  ASSERT_TRUE(node.wait_for_log("deleted job 1 of stream copy", 20s)) << node.log();
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/jobs/1").status, 404);
  EXPECT_FALSE(fs::exists(root / "data" / "jobs" / "1"));
  EXPECT_TRUE(contains(http_get(node.web_port(), "/metrics").body,
                       "dcmstreams_scrubbed_jobs_total{reason=\"age\"} 1"));

  temp_dir dry_root;
  options.storage_json = R"(, "retention_days": 0.00002, "scrub_interval_s": 0.3, )"
                         R"("scrub_dry_run": true)";
  test_node dry{dry_root.path(), options};
  write_stream(dry.streams_dir(), "copy", "COPYAE", copy_command);
  dry.start();
  send_synthetic_study(dry, scratch / "study", "COPYAE", 3, 32);
  ASSERT_TRUE(dry.wait_for_finished_jobs(1, 30s)) << dry.log();
  ASSERT_TRUE(eventually([&] { return contains(dry.log(), "dry run: would delete job 1"); }, 20s))
      << dry.log();
  EXPECT_EQ(http_get(dry.web_port(), "/api/v1/jobs/1").status, 200);
  EXPECT_EQ(count_files(dry_root / "data" / "jobs" / "1" / "OUTPUT"), 3u);
}

TEST(full_disk, a_job_creation_that_fails_on_a_full_disk_leaves_no_ghost_once_space_is_back) {
  temp_dir root, scratch;
  small_disk disk{root / "data", 24};
  if (!disk.mounted())
    GTEST_SKIP() << "mounting a tmpfs needs root (CAP_SYS_ADMIN); CI runs as root";
  node_options options;
  options.quiet_period_s = 2;
  options.storage_json = R"(, "journal_segment_mb": 1)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE", copy_command);
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 3);
  // The disk fills up before the study's quiet period ends.
  auto filler = node.data_dir() / "filler";
  {
    std::ofstream out{filler, std::ios::binary};
    std::string block(1 << 20, '\0');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size())))
      ;
  }
  ASSERT_TRUE(node.wait_for_log("cannot create the job for", 15s)) << node.log();
  fs::remove(filler);
  // The assembler tries again after another quiet period; then exactly one
  // job is listed, none left "creating".
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  std::this_thread::sleep_for(1s);
  auto jobs = http_get(node.web_port(), "/api/v1/jobs").body;
  EXPECT_TRUE(contains(jobs, "\"total\":1")) << jobs;
  EXPECT_FALSE(contains(jobs, "\"state\":\"creating\"")) << jobs;
  EXPECT_EQ(node.job_dirs().size(), 1u);
  EXPECT_EQ(test_node::input_files(node.job_dirs().at(0)).size(), 3u);
}
