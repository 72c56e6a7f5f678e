#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace dcmstreams::fixtures {

namespace fs = std::filesystem;

process::process(process_options options) : options_(std::move(options)) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string entry{*e};
    auto name = entry.substr(0, entry.find('='));
    if (!options_.env.count(name))
      env_strings.push_back(entry);
  }
  for (auto& [name, value] : options_.env)
    env_strings.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (auto& a : options_.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // A process group of its own, so that stopping it stops its children too.
    ::setpgid(0, 0);
    if (!options_.cwd.empty() && ::chdir(options_.cwd.c_str()) != 0)
      ::_exit(126);
    const char* out = options_.output.empty() ? "/dev/null" : options_.output.c_str();
    int fd = ::open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(argv[0], argv.data(), envp.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
}

process::~process() {
  if (running()) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

bool process::running() {
  if (status_ || pid_ <= 0)
    return false;
  int status = 0;
  pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

std::optional<int> process::wait(std::chrono::milliseconds timeout) {
  eventually([&] { return !running(); }, timeout);
  return status_;
}

void process::signal(int sig) {
  if (running())
    ::kill(pid_, sig);
}

int process::stop(std::chrono::milliseconds grace) {
  signal(SIGTERM);
  if (auto code = wait(grace))
    return *code;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  return wait(std::chrono::seconds(10)).value_or(-1);
}

std::string process::output() const {
  return options_.output.empty() ? std::string() : read_file(options_.output);
}

run_result run(std::vector<std::string> argv, std::chrono::seconds timeout,
               std::map<std::string, std::string> env) {
  temp_dir scratch;
  env.emplace("TCP_NODELAY", "1");
  process p{{std::move(argv), std::move(env), {}, scratch / "output.txt"}};
  run_result result;
  auto code = p.wait(timeout);
  if (!code) {
    p.stop(std::chrono::milliseconds(100));
    result.exit_code = -1;
  } else {
    result.exit_code = *code;
  }
  result.output = p.output();
  return result;
}

std::uint16_t free_port() {
  // Random ports in a high range, checked by binding; the kernel's ephemeral
  // range is avoided so a port is not taken by an outgoing connection later.
  static std::mt19937 random{std::random_device{}()};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto port = static_cast<std::uint16_t>(20000 + random() % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (ok)
      return port;
  }
  throw std::runtime_error("no free port");
}

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/dcmstreams-test-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  if (std::getenv("DCMSTREAMS_KEEP_TEST_FILES"))
    return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out{path, std::ios::binary};
  out << content;
}

small_disk::small_disk(const std::filesystem::path& where, int megabytes) : where_(where) {
  std::filesystem::create_directories(where);
  auto options = "size=" + std::to_string(megabytes) + "m";
  mounted_ = ::mount("tmpfs", where.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

small_disk::~small_disk() {
  if (mounted_)
    ::umount2(where_.c_str(), MNT_DETACH);
}

} // namespace dcmstreams::fixtures
