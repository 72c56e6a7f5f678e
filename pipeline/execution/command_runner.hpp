#pragma once
// Runs a stream's external program the way the old appliance ran work.sh:
// `argv... INPUT OUTPUT` in the job folder, output appended to
// processing.log, in a process group of its own so that a timeout or a
// cancel stops everything it started. A keeper process between the node and
// the program kills every process of the job when the program ends or when
// the node dies (even by kill -9), so no leftover writes into a later run.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dcmstreams {

/// Lets another thread stop a running job: kills the process group, or makes
/// kernels stop at their next check.
class cancel_token {
public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  /// Called by the runner: the process group to signal on cancel (0: none).
  void attach(pid_t group);

private:
  std::atomic<bool> cancelled_{false};
  std::atomic<pid_t> group_{0};
};

struct command_spec {
  std::vector<std::string> argv;
  std::filesystem::path working_dir;
  std::map<std::string, std::string> environment; // added to the node's
  std::filesystem::path log_file;                 // stdout and stderr, appended
  /// Of the program's output, at most this much reaches log_file; the rest
  /// is read and counted, so a program that floods its output neither fills
  /// the disk nor blocks.
  std::uint64_t log_limit_bytes = 64ull << 20;
  double timeout_s = 0;    // 0: no limit
  double kill_grace_s = 5; // after TERM, before KILL
};

struct command_outcome {
  bool started = false;
  int exit_code = -1; // when it exited
  int signal = 0;     // when a signal ended it
  bool timed_out = false;
  bool cancelled = false;
  double seconds = 0;
  std::uint64_t output_bytes = 0;    // the program's stdout and stderr
  std::uint64_t output_left_out = 0; // of them, beyond log_limit_bytes
  /// In words: "exit status 3", "killed by signal 9 (Killed) after the 600 s timeout", ...
  std::string message;
  bool succeeded() const { return started && exit_code == 0 && !timed_out && !cancelled; }
};

/// Starts the program and waits for it; never throws. A program that cannot
/// be started comes back with started == false and the reason.
command_outcome run_command(const command_spec& spec, cancel_token& cancel);

} // namespace dcmstreams
