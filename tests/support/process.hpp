#pragma once
// Starting real peers (DCMTK tools, the node itself) from tests: fork/exec
// with extra environment, output to a file, wait with a deadline, stop.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace dcmstreams::fixtures {

struct process_options {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env; // added to (or replacing in) the test's environment
  std::filesystem::path cwd;              // empty: the test's
  std::filesystem::path output;           // stdout and stderr go here; empty: /dev/null
};

class process {
public:
  explicit process(process_options options);
  ~process(); // kills (SIGKILL) if still running
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  /// Waits up to `timeout`; the exit code, 128+signal if killed, or nothing on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void signal(int sig);
  /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::string output() const;

private:
  process_options options_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// A tmpfs of `megabytes` at `where` for the life of the object: a real
/// full disk for tests. Mounting needs root (CI runs as root); check mounted().
class small_disk {
public:
  small_disk(const std::filesystem::path& where, int megabytes);
  ~small_disk();
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;
  bool mounted() const { return mounted_; }

private:
  std::filesystem::path where_;
  bool mounted_ = false;
};

/// Runs a program to completion (with TCP_NODELAY=1) and returns exit code and output.
struct run_result {
  int exit_code = -1;
  std::string output;
};
run_result run(std::vector<std::string> argv,
               std::chrono::seconds timeout = std::chrono::seconds(120),
               std::map<std::string, std::string> env = {});

/// A TCP port on 127.0.0.1 that nobody listens on right now.
std::uint16_t free_port();

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
template <class Condition> bool eventually(Condition condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    struct timespec pause {
      0, 50 * 1000 * 1000
    };
    nanosleep(&pause, nullptr);
  }
  return condition();
}

/// A fresh folder under $TMPDIR, removed when the test ends (kept if
/// DCMSTREAMS_KEEP_TEST_FILES is set, for looking at failures).
class temp_dir {
public:
  temp_dir();
  ~temp_dir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

} // namespace dcmstreams::fixtures
