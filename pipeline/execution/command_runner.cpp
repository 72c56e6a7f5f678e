#include "pipeline/execution/command_runner.hpp"

#include "pipeline/foundation/files.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// The keeper's own children, read from /proc without allocating (the keeper
// is a fork of a threaded process and may only make system calls). Returns
// how many were found; -1 if the kernel does not list them.
int list_children(pid_t* children, int capacity) {
  char path[64] = "/proc/self/task/";
  // The keeper has one thread, whose id is its pid.
  pid_t self = ::getpid();
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + self % 10);
    self /= 10;
  } while (self > 0);
  std::size_t at = std::strlen(path);
  while (n > 0)
    path[at++] = digits[--n];
  std::memcpy(path + at, "/children", 10);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char text[4096];
  ssize_t length = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  int count = 0;
  pid_t value = 0;
  bool in_number = false;
  for (ssize_t i = 0; i < length && count < capacity; ++i) {
    if (text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      in_number = true;
    } else if (in_number) {
      children[count++] = value;
      value = 0;
      in_number = false;
    }
  }
  return count;
}

// Kills every process that descends from the keeper, however it tried to
// leave: the keeper is a subreaper, so orphans (double forks, setsid
// daemons) become its children and are found on the next pass.
void kill_descendants(pid_t group) {
  for (;;) {
    pid_t children[256];
    int count = list_children(children, 256);
    if (count < 0) {
      // No child list in this kernel: the job's process group is what we can reach.
      ::kill(-group, SIGKILL);
      return;
    }
    // Waiting for exactly these lets the orphans they leave, now the
    // keeper's children, be killed on the next pass rather than waited for.
    for (int i = 0; i < count; ++i)
      ::kill(children[i], SIGKILL);
    for (int i = 0; i < count; ++i)
      ::waitpid(children[i], nullptr, 0);
    if (count == 0) {
      pid_t reaped;
      while ((reaped = ::waitpid(-1, nullptr, WNOHANG)) > 0) {
      }
      if (reaped < 0 && errno == ECHILD)
        return;
      ::usleep(1000); // a child that is exiting, not yet listed nor reapable
    }
  }
}

// The keeper: the node's direct child, leader of the job's process group and
// a subreaper. It starts the program and waits. When the node dies, even by
// kill -9, the kernel sends the keeper SIGHUP (parent-death signal) and it
// kills every process of the job, so that nothing writes into the OUTPUT of
// the job's next run. When the program ends, whatever it left running ends
// too, and the keeper exits as the program did. Only system calls from here.
[[noreturn]] void run_keeper(pid_t node, char** argv, char** envp, int log, int exec_error_fd,
                             const char* working_dir) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  ::prctl(PR_SET_DUMPABLE, 0); // no core file when it re-raises a crash signal
  if (::getppid() != node)
    ::_exit(127);
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, SIGHUP);
  sigaddset(&waited, SIGTERM); // a cancel signals the group: meant for the program
  sigaddset(&waited, SIGINT);
  ::sigprocmask(SIG_SETMASK, &waited, nullptr);

  pid_t program = ::fork();
  if (program < 0) {
    int error = errno;
    [[maybe_unused]] auto ignored = ::write(exec_error_fd, &error, sizeof error);
    ::_exit(127);
  }
  if (program == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The node's descriptors (listening sockets, the database, DICOM
    // connections) must not reach the program; marked close-on-exec, they go
    // at exec, and the exec pipe still reports a failed exec.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    int error = 0;
    if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(log, 1) < 0 || ::dup2(log, 2) < 0)
      error = errno;
    else if (::chdir(working_dir) != 0)
      error = errno;
    if (error == 0) {
      ::execvpe(argv[0], argv, envp);
      error = errno;
    }
    [[maybe_unused]] auto ignored = ::write(exec_error_fd, &error, sizeof error);
    ::_exit(127);
  }
  // The node reads end-of-file from the exec pipe once the program has
  // exec'd (close-on-exec) and the keeper holds no copy of it.
  ::close_range(0, ~0U, 0);

  int program_status = 0;
  bool program_ended = false;
  while (!program_ended) {
    siginfo_t info{};
    if (::sigwaitinfo(&waited, &info) < 0)
      continue;
    if (info.si_signo == SIGHUP) {
      kill_descendants(::getpid());
      ::_exit(128 + SIGHUP);
    }
    if (info.si_signo != SIGCHLD)
      continue;
    int status = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(-1, &status, WNOHANG)) > 0)
      if (reaped == program) {
        program_status = status;
        program_ended = true;
      }
  }
  kill_descendants(::getpid());
  if (WIFEXITED(program_status))
    ::_exit(WEXITSTATUS(program_status));
  int sig = WTERMSIG(program_status);
  ::signal(sig, SIG_DFL);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  ::kill(::getpid(), sig);
  ::_exit(128 + sig);
}

// The program's stdout and stderr come through a pipe that the node reads:
// what fits under the limit is appended to processing.log, the rest is read
// and counted only, so that a program flooding its output neither fills the
// data disk nor blocks on a full pipe.
class output_copier {
public:
  output_copier(int pipe, int log, std::uint64_t limit) : pipe_(pipe), log_(log), limit_(limit) {}

  /// Reads what the pipe holds now (at most 4 MiB, so that the caller's
  /// timeout and cancel checks keep their pace); false at end-of-file.
  bool read_available(command_outcome& outcome) {
    char buffer[65536];
    for (int round = 0; round < 64; ++round) {
      ssize_t got = ::read(pipe_, buffer, sizeof buffer);
      if (got == 0)
        return false;
      if (got < 0)
        return errno == EINTR || errno == EAGAIN;
      auto size = static_cast<std::uint64_t>(got);
      std::uint64_t kept =
          outcome.output_bytes < limit_ ? std::min(size, limit_ - outcome.output_bytes) : 0;
      outcome.output_bytes += size;
      outcome.output_left_out += size - kept;
      if (kept > 0)
        write_all(buffer, kept);
      if (kept < size && !said_so_) {
        said_so_ = true;
        std::string note = "\n[dcmstreams] the program's output beyond " +
                           std::to_string(limit_ >> 20) +
                           " MiB is left out of processing.log (the stream's log_limit_mb)\n";
        write_all(note.data(), note.size());
      }
    }
    return true;
  }

private:
  void write_all(const char* data, std::uint64_t size) {
    while (size > 0) {
      ssize_t wrote = ::write(log_, data, size);
      if (wrote < 0 && errno == EINTR)
        continue;
      if (wrote <= 0)
        return; // a full disk: the job's outcome does not depend on its log
      data += wrote;
      size -= static_cast<std::uint64_t>(wrote);
    }
  }

  int pipe_;
  int log_;
  std::uint64_t limit_;
  bool said_so_ = false;
};

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
  int exec_pipe[2], output_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(log);
    outcome.message = "cannot create a pipe: " + errno_text(errno);
    return outcome;
  }
  if (::pipe2(output_pipe, O_CLOEXEC) != 0) {
    ::close(log);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
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

  pid_t node = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {log, exec_pipe[0], exec_pipe[1], output_pipe[0], output_pipe[1]})
      ::close(fd);
    outcome.message = "cannot fork: " + errno_text(errno);
    return outcome;
  }
  if (pid == 0)
    run_keeper(node, argv.data(), envp.data(), output_pipe[1], exec_pipe[1],
               spec.working_dir.c_str());
  ::setpgid(pid, pid); // also in the parent, so the group exists before any signal
  ::close(exec_pipe[1]);
  ::close(output_pipe[1]);
  ::fcntl(output_pipe[0], F_SETFL, O_NONBLOCK);
  output_copier copier{output_pipe[0], log, spec.log_limit_bytes};
  // Closes what the copy needs whichever way this function returns.
  struct descriptors {
    int a, b;
    ~descriptors() {
      ::close(a);
      ::close(b);
    }
  } closer{output_pipe[0], log};
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
  bool output_open = true;
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
    // poll() skips a negative descriptor: without a pidfd, the timeout paces the loop.
    pollfd waited[2] = {{pidfd, POLLIN, 0}, {output_open ? output_pipe[0] : -1, POLLIN, 0}};
    ::poll(waited, 2, pidfd >= 0 ? 100 : 50);
    if (output_open)
      output_open = copier.read_available(outcome);
  }
  // The keeper killed whatever the program left before it exited, so every
  // writer is gone: what is still in the pipe is the end of the output.
  while (output_open) {
    output_open = copier.read_available(outcome);
    if (output_open) {
      pollfd rest{output_pipe[0], POLLIN, 0};
      if (::poll(&rest, 1, 1000) <= 0)
        break;
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
