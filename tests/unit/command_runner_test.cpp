#include "pipeline/execution/command_runner.hpp"
#include "pipeline/execution/job_runner.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

command_spec shell(const fixtures::temp_dir& dir, const std::string& script, double timeout = 0) {
  command_spec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.working_dir = dir.path();
  spec.log_file = dir / "processing.log";
  spec.timeout_s = timeout;
  spec.kill_grace_s = 1;
  spec.environment = {{"DCMSTREAMS_JOB_ID", "42"}};
  return spec;
}

} // namespace

TEST(command_runner, exit_status_output_and_environment) {
  fixtures::temp_dir dir;
  cancel_token cancel;
  auto ok = run_command(shell(dir, "echo job $DCMSTREAMS_JOB_ID in $(pwd); echo oops >&2"), cancel);
  EXPECT_TRUE(ok.succeeded());
  auto log = fixtures::read_file(dir / "processing.log");
  EXPECT_NE(log.find("job 42 in " + dir.path().string()), std::string::npos) << log;
  EXPECT_NE(log.find("oops"), std::string::npos);
  auto failed = run_command(shell(dir, "exit 3"), cancel);
  EXPECT_FALSE(failed.succeeded());
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.message, "exit status 3");
  auto killed = run_command(shell(dir, "kill -9 $$"), cancel);
  EXPECT_EQ(killed.signal, 9);
  EXPECT_NE(killed.message.find("killed by signal 9"), std::string::npos);
}

TEST(command_runner, a_program_that_floods_its_output_fills_the_log_only_up_to_the_limit) {
  fixtures::temp_dir dir;
  cancel_token cancel;
  auto spec = shell(dir, "echo first; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo last >&2");
  spec.log_limit_bytes = 1 << 20;
  auto outcome = run_command(spec, cancel);
  EXPECT_TRUE(outcome.succeeded()) << outcome.message;
  EXPECT_EQ(outcome.output_bytes, 6u + 5000000u + 1u + 5u);
  EXPECT_EQ(outcome.output_left_out, outcome.output_bytes - (1u << 20));
  auto log = fixtures::read_file(dir / "processing.log");
  EXPECT_LT(log.size(), (1u << 20) + 200u);
  EXPECT_EQ(log.rfind("first\n", 0), 0u) << "the start of the output is kept";
  EXPECT_NE(log.find("output beyond 1 MiB is left out of processing.log"), std::string::npos);
  EXPECT_EQ(log.find("last"), std::string::npos);
}

TEST(command_runner, a_program_that_cannot_start_is_a_clear_failure) {
  fixtures::temp_dir dir;
  cancel_token cancel;
  command_spec spec = shell(dir, "");
  spec.argv = {"/nonexistent/work.sh"};
  auto outcome = run_command(spec, cancel);
  EXPECT_FALSE(outcome.started);
  EXPECT_NE(outcome.message.find("cannot start /nonexistent/work.sh: No such file or directory"),
            std::string::npos)
      << outcome.message;
}

TEST(command_runner, the_timeout_stops_the_whole_process_group) {
  fixtures::temp_dir dir;
  cancel_token cancel;
  // A child that ignores TERM, and a grandchild in the background.
  auto outcome = run_command(
      shell(dir, "sleep 30 & echo $! > grandchild.pid; trap '' TERM; sleep 30", 0.5), cancel);
  EXPECT_TRUE(outcome.timed_out);
  EXPECT_LT(outcome.seconds, 5);
  EXPECT_NE(outcome.message.find("after the 0.5 s timeout"), std::string::npos) << outcome.message;
  auto grandchild = std::stoi(fixtures::read_file(dir / "grandchild.pid"));
  EXPECT_TRUE(
      fixtures::eventually([&] { return ::kill(grandchild, 0) != 0; }, std::chrono::seconds(5)))
      << "the background process was left running";
}

TEST(command_runner, cancel_stops_a_running_program) {
  fixtures::temp_dir dir;
  cancel_token cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.cancel();
  });
  auto outcome = run_command(shell(dir, "sleep 30"), cancel);
  canceller.join();
  EXPECT_TRUE(outcome.cancelled);
  EXPECT_LT(outcome.seconds, 5);
}

TEST(job_runner, a_program_writes_proc_json_or_gets_one) {
  fixtures::temp_dir dir;
  store_layout layout{dir.path()};
  job_record job;
  job.id = 7;
  job.stream = "s";
  fs::create_directories(layout.job_dir(7) / "INPUT");
  fs::create_directories(layout.job_dir(7) / "OUTPUT");
  fixtures::write_file(layout.job_dir(7) / "OUTPUT" / "stale.txt", "from an earlier run");
  job_plan plan;
  plan.stream = "s";
  plan.command = {"/bin/sh", "-c", "test -d \"$1\" && test -d \"$2\" && touch \"$2\"/made", "sh"};
  cancel_token cancel;
  auto outcome = run_job(layout, job, plan, cancel);
  EXPECT_EQ(outcome.state, job_state::success) << outcome.message;
  EXPECT_FALSE(fs::exists(layout.job_dir(7) / "OUTPUT" / "stale.txt")) << "OUTPUT starts clean";
  EXPECT_TRUE(fs::exists(layout.job_dir(7) / "OUTPUT" / "made"));
  EXPECT_EQ(fixtures::read_file(layout.job_dir(7) / "proc.json"),
            "[{\"success\":\"success\",\"message\":\"\"}]\n");

  plan.command = {"/bin/sh", "-c", "exit 4"};
  outcome = run_job(layout, job, plan, cancel);
  EXPECT_EQ(outcome.state, job_state::failed);
  EXPECT_EQ(fixtures::read_file(layout.job_dir(7) / "proc.json"),
            "[{\"success\":\"failed\",\"message\":\"exit status 4\"}]\n");

  // The program's own verdict stands.
  plan.command = {
      "/bin/sh", "-c",
      "echo '[{\"success\": \"partial\", \"message\": \"2 of 3 series\"}]' > proc.json"};
  outcome = run_job(layout, job, plan, cancel);
  EXPECT_EQ(outcome.state, job_state::failed);
  EXPECT_EQ(outcome.message, "2 of 3 series");
  EXPECT_NE(fixtures::read_file(layout.job_dir(7) / "proc.json").find("partial"),
            std::string::npos);
  auto log = fixtures::read_file(layout.job_dir(7) / "processing.log");
  EXPECT_NE(log.find("job 7 of stream s starts"), std::string::npos) << log;
}
