#include "web/zip_stream.hpp"

#include "pipeline/foundation/log.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace dcmstreams::web {

namespace fs = std::filesystem;

namespace {

// Opens `relative` below the folder `root_fd` for reading, refusing any
// symbolic link on the way and any path that leaves the folder, even one
// swapped in after the folder was listed. -1 if refused or gone.
int open_beneath(int root_fd, const std::string& relative) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof how));
}

// An entry name a ZIP tool extracts inside its target folder.
bool safe_entry_name(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.find('\\') != std::string::npos)
    return false;
  for (auto& part : fs::path(name))
    if (part == ".." || part == ".")
      return false;
  return true;
}

} // namespace

zip_stream::zip_stream(fs::path root, std::string prefix)
    : root_(std::move(root)), prefix_(std::move(prefix)) {}

zip_stream::~zip_stream() {
  cancel();
  if (!worker_.joinable())
    return;
  // The worker may drop the last reference itself (the client's callback it
  // ran held the session, which held this stream): it is then past its last
  // use of this object, and must not join itself.
  if (worker_.get_id() == std::this_thread::get_id())
    worker_.detach();
  else
    worker_.join();
}

void zip_stream::cancel() {
  std::lock_guard<std::mutex> guard{mutex_};
  cancelled_ = true;
  space_.notify_all();
}

void zip_stream::pull(std::function<void(std::optional<std::string>)> next) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (!started_) {
    started_ = true;
    // The worker keeps this stream alive until it is done writing.
    worker_ = std::thread([self = shared_from_this()] { self->produce(); });
  }
  if (!blocks_.empty()) {
    auto block = std::move(blocks_.front());
    blocks_.pop_front();
    space_.notify_all();
    lock.unlock();
    next(std::move(block));
    return;
  }
  if (finished_) {
    lock.unlock();
    next(std::nullopt);
    return;
  }
  waiting_ = std::move(next);
}

bool zip_stream::push(std::string block) {
  std::unique_lock<std::mutex> lock{mutex_};
  space_.wait(lock, [&] { return cancelled_ || blocks_.size() < max_blocks; });
  if (cancelled_)
    return false;
  if (waiting_) {
    auto next = std::move(waiting_);
    waiting_ = nullptr;
    lock.unlock();
    next(std::move(block));
    return true;
  }
  blocks_.push_back(std::move(block));
  return true;
}

void zip_stream::produce() {
  // Regular files only, by their own type: a symbolic link (to /etc/passwd,
  // to a folder outside) is neither followed nor listed. Directory links are
  // not descended into either (the iterator's default).
  std::vector<std::string> files; // relative to root_
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root_, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    std::error_code type_error;
    if (it->symlink_status(type_error).type() == fs::file_type::regular)
      files.push_back(it->path().lexically_relative(root_).generic_string());
  }
  std::sort(files.begin(), files.end());
  int root_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  archive* zip = archive_write_new();
  archive_write_set_format_zip(zip);
  archive_write_zip_set_compression_store(zip);
  archive_write_set_bytes_per_block(zip, 64 * 1024);
  archive_write_set_bytes_in_last_block(zip, 1);
  auto write = [](archive*, void* self, const void* data, size_t length) -> la_ssize_t {
    auto* stream = static_cast<zip_stream*>(self);
    if (!stream->push(std::string(static_cast<const char*>(data), length)))
      return -1;
    return static_cast<la_ssize_t>(length);
  };
  bool ok = archive_write_open(zip, this, nullptr, write, nullptr) == ARCHIVE_OK;
  std::vector<char> buffer(256 * 1024);
  for (auto& file : files) {
    if (!ok)
      break;
    auto name = prefix_ + "/" + file;
    if (!safe_entry_name(name)) {
      log::warning("web", "left " + file + " out of a download of " + root_.string() +
                              ": its name would extract outside the archive's folder");
      continue;
    }
    int fd = root_fd < 0 ? -1 : open_beneath(root_fd, file);
    struct stat info {};
    if (fd < 0 || ::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      if (fd >= 0)
        ::close(fd);
      continue; // deleted meanwhile, or swapped for a link
    }
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, name.c_str());
    archive_entry_set_size(entry, static_cast<la_int64_t>(info.st_size));
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_mtime(entry, info.st_mtime, 0);
    ok = archive_write_header(zip, entry) == ARCHIVE_OK;
    archive_entry_free(entry);
    // The size in the header is what was there when the file was opened.
    auto left = static_cast<std::uint64_t>(info.st_size);
    while (ok && left > 0) {
      auto got = ::read(fd, buffer.data(), std::min<std::uint64_t>(buffer.size(), left));
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        break;
      left -= static_cast<std::uint64_t>(got);
      if (archive_write_data(zip, buffer.data(), static_cast<size_t>(got)) < 0)
        ok = false;
    }
    ::close(fd);
  }
  if (root_fd >= 0)
    ::close(root_fd);
  if (ok && archive_write_close(zip) != ARCHIVE_OK)
    ok = false;
  if (!ok && !cancelled_)
    log::warning("web", "a download of " + root_.string() + " stopped: " +
                            (archive_error_string(zip) ? archive_error_string(zip) : "cancelled"));
  archive_write_free(zip);
  std::unique_lock<std::mutex> lock{mutex_};
  finished_ = true;
  if (waiting_ && blocks_.empty()) {
    auto next = std::move(waiting_);
    waiting_ = nullptr;
    lock.unlock();
    next(std::nullopt);
  }
}

} // namespace dcmstreams::web
