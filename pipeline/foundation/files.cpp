#include "pipeline/foundation/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

namespace dcmstreams {

namespace fs = std::filesystem;

std::string errno_text(int error_number) {
  char buffer[256];
  // GNU strerror_r returns the message pointer, which may not be `buffer`.
  return strerror_r(error_number, buffer, sizeof buffer);
}

namespace {

failure io_failure(const fs::path& path, const std::string& what, int error_number) {
  return failure{ec::io_error, path.string() + ": " + what + ": " + errno_text(error_number)};
}

status write_all(int fd, std::string_view content, const fs::path& path) {
  if (int error = write_fully(fd, content))
    return io_failure(path, "cannot write", error);
  return std::nullopt;
}

} // namespace

int write_fully(int fd, std::string_view content) {
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    auto written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  return 0;
}

result<std::string> read_text_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return io_failure(path, "cannot open the file for reading", errno);
  std::string content;
  char buffer[65536];
  for (;;) {
    auto got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      int saved = errno;
      ::close(fd);
      return io_failure(path, "cannot read", saved);
    }
    if (got == 0)
      break;
    content.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return content;
}

namespace {

// Opens `path` with `flags`, applies `sync` (fsync, fdatasync, syncfs) to it
// and closes it; `what` names the thing in messages ("the folder").
status open_and_sync(const fs::path& path, int flags, int (*sync)(int), const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0)
    return io_failure(path, std::string("cannot open ") + what + " to sync it", errno);
  int rc = sync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0)
    return io_failure(path, std::string("cannot sync ") + what, saved);
  return std::nullopt;
}

} // namespace

status sync_file_system(const fs::path& path) {
  return open_and_sync(path, O_RDONLY, ::syncfs, "its file system");
}

status sync_directory(const fs::path& dir) {
  return open_and_sync(dir, O_RDONLY | O_DIRECTORY, ::fsync, "the folder");
}

status sync_file(const fs::path& file) {
  return open_and_sync(file, O_RDONLY, ::fdatasync, "the file");
}

status write_file_atomically(const fs::path& path, std::string_view content, bool durable) {
  static std::atomic<unsigned> sequence{0};
  auto temporary = path;
  temporary += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(sequence++);
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_failure(temporary, "cannot create", errno);
  if (auto problem = write_all(fd, content, temporary)) {
    ::close(fd);
    ::unlink(temporary.c_str());
    return problem;
  }
  if (durable && ::fdatasync(fd) != 0) {
    int saved = errno;
    ::close(fd);
    ::unlink(temporary.c_str());
    return io_failure(temporary, "cannot sync", saved);
  }
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(temporary.c_str());
    return io_failure(temporary, "cannot close", saved);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temporary.c_str());
    return io_failure(path, "cannot rename the new file into place", saved);
  }
  if (durable)
    return sync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
  return std::nullopt;
}

status create_directories(const fs::path& dir, bool durable) {
  std::vector<fs::path> missing;
  for (auto p = dir; !p.empty() && !fs::exists(p); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path())
      break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST)
      return io_failure(*it, "cannot create the folder", errno);
    if (durable) {
      auto parent = it->parent_path().empty() ? fs::path(".") : it->parent_path();
      if (auto problem = sync_directory(parent))
        return problem;
    }
  }
  return std::nullopt;
}

status check_writable(const fs::path& dir) {
  if (::access(dir.c_str(), W_OK) == 0)
    return std::nullopt;
  return io_failure(dir, "cannot be written", errno);
}

result<disk_space> disk_space_of(const fs::path& path) {
  struct statvfs info {};
  if (::statvfs(path.c_str(), &info) != 0)
    return io_failure(path, "cannot read the free space", errno);
  disk_space space;
  space.free = static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
  space.total = static_cast<std::uint64_t>(info.f_blocks) * info.f_frsize;
  // Blocks reserved for root count neither as used nor as usable.
  double used = static_cast<double>(info.f_blocks - info.f_bfree);
  double usable = used + static_cast<double>(info.f_bavail);
  space.used_pct = usable > 0 ? 100.0 * used / usable : 0;
  return space;
}

result<std::uint64_t> free_bytes(const fs::path& path) {
  auto space = disk_space_of(path);
  if (!space)
    return space.error();
  return space->free;
}

} // namespace dcmstreams
