#include "pipeline/command_runner.hpp"

#include "pipeline/files.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace dcmstreams {

void cancel_token::cancel() {
  cancelled_ = true;
  if (pid_t group = group_.load(); group > 0)
    ::kill(-group, SIGTERM);
}

void cancel_token::attach(pid_t group) {
  group_ = group;
  if (group > 0 && cancelled_)
    ::kill(-group, SIGTERM);
}

namespace {

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit status " + std::to_string(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

} // namespace

command_outcome run_command(const command_spec& spec, cancel_token& cancel) {
  command_outcome outcome;
  auto start = std::chrono::steady_clock::now();
  if (spec.argv.empty()) {
    outcome.message = "no program to run";
    return outcome;
  }
  int log = ::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    outcome.message = "cannot open " + spec.log_file.string() + ": " + errno_text(errno);
    return outcome;
  }
  // The child reports a failed exec through this pipe; a successful exec
  // closes it (O_CLOEXEC), so the parent reads end-of-file.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(log);
    outcome.message = "cannot create a pipe: " + errno_text(errno);
    return outcome;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string entry{*e};
    if (!spec.environment.count(entry.substr(0, entry.find('='))))
      env_strings.push_back(entry);
  }
  for (auto& [name, value] : spec.environment)
    env_strings.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (auto& a : spec.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    outcome.message = "cannot fork: " + errno_text(errno);
    return outcome;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // If the node dies (kill -9), the program dies with it: after a restart
    // the job runs again, and two runs must not write one OUTPUT/.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1)
      ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The node's descriptors (listening sockets, the database, DICOM
    // connections) must not reach the program: a grandchild that outlives a
    // killed node would keep its ports bound. Marked close-on-exec, they go
    // at exec; the exec pipe still reports a failed exec.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    int devnull = ::open("/dev/null", O_RDONLY);
    int error = 0;
    if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(log, 1) < 0 || ::dup2(log, 2) < 0)
      error = errno;
    else if (::chdir(spec.working_dir.c_str()) != 0)
      error = errno;
    if (error == 0) {
      ::execvpe(argv[0], argv.data(), envp.data());
      error = errno;
    }
    [[maybe_unused]] auto ignored = ::write(exec_pipe[1], &error, sizeof error);
    ::_exit(127);
  }
  ::setpgid(pid, pid); // also in the parent, so the group exists before any signal
  ::close(exec_pipe[1]);
  ::close(log);
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(exec_pipe[0], &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_error)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    outcome.message = "cannot start " + spec.argv.front() + ": " + errno_text(exec_error);
    return outcome;
  }
  outcome.started = true;
  cancel.attach(pid);

  int pidfd = pidfd_open(pid);
  auto deadline = spec.timeout_s > 0
                      ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(spec.timeout_s))
                      : std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point kill_at = std::chrono::steady_clock::time_point::max();
  int status = 0;
  for (;;) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid)
      break;
    auto now = std::chrono::steady_clock::now();
    bool stop_now =
        (now >= deadline && !outcome.timed_out) || (cancel.cancelled() && !outcome.cancelled);
    if (stop_now) {
      if (now >= deadline)
        outcome.timed_out = true;
      else
        outcome.cancelled = true;
      ::kill(-pid, SIGTERM);
      kill_at = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          std::chrono::duration<double>(spec.kill_grace_s));
    }
    if (now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    if (pidfd >= 0) {
      pollfd exited{pidfd, POLLIN, 0};
      ::poll(&exited, 1, 100);
    } else {
      ::usleep(50 * 1000);
    }
  }
  if (pidfd >= 0)
    ::close(pidfd);
  cancel.attach(0);
  // A cancel signals the group itself, so the program may end before the
  // loop above saw the request.
  if (cancel.cancelled() && !outcome.timed_out)
    outcome.cancelled = true;
  // Whatever the program left running in its group ends with the job.
  ::kill(-pid, SIGKILL);
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status))
    outcome.exit_code = WEXITSTATUS(status);
  else
    outcome.signal = WTERMSIG(status);
  outcome.message = describe_status(status);
  if (outcome.timed_out) {
    char limit[32];
    std::snprintf(limit, sizeof limit, "%g", spec.timeout_s);
    outcome.message += std::string(" after the ") + limit + " s timeout (timeout_s)";
  } else if (outcome.cancelled) {
    outcome.message += " after the job was cancelled";
  }
  return outcome;
}

} // namespace dcmstreams
