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

zip_stream::zip_stream(fs::path root, std::string prefix, work_pool& pool)
    : root_(std::move(root)), prefix_(std::move(prefix)), pool_(pool) {}

zip_stream::~zip_stream() {
  // No step holds the stream any more: each holds a reference while it runs.
  if (zip_) {
    archive_write_free(zip_);
    zip_ = nullptr;
  }
  if (file_fd_ >= 0)
    ::close(file_fd_);
  if (root_fd_ >= 0)
    ::close(root_fd_);
}

void zip_stream::cancel() {
  std::lock_guard<std::mutex> guard{mutex_};
  cancelled_ = true;
}

void zip_stream::pull(std::function<void(std::optional<std::string>)> next) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (!blocks_.empty()) {
    auto block = std::move(blocks_.front());
    blocks_.pop_front();
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
  if (producing_)
    return; // the step under way answers
  producing_ = true;
  lock.unlock();
  if (!pool_.post_continuation([self = shared_from_this()] { self->produce_some(); })) {
    // The node stops: end the body here.
    lock.lock();
    producing_ = false;
    finished_ = true;
    auto waiting = std::move(waiting_);
    waiting_ = nullptr;
    lock.unlock();
    if (waiting)
      waiting(std::nullopt);
  }
}

void zip_stream::push(std::string block) {
  std::lock_guard<std::mutex> guard{mutex_};
  blocks_.push_back(std::move(block));
}

void zip_stream::produce_some() {
  for (;;) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (cancelled_ || !blocks_.empty())
        break;
    }
    if (!write_step()) {
      close_archive();
      std::lock_guard<std::mutex> guard{mutex_};
      finished_ = true;
      break;
    }
  }
  std::unique_lock<std::mutex> lock{mutex_};
  producing_ = false;
  if (!waiting_ || (blocks_.empty() && !finished_))
    return; // cancelled: nobody waits for more
  auto next = std::move(waiting_);
  waiting_ = nullptr;
  std::optional<std::string> piece;
  if (!blocks_.empty()) {
    piece = std::move(blocks_.front());
    blocks_.pop_front();
  }
  lock.unlock();
  next(std::move(piece));
}

void zip_stream::open_archive() {
  // Regular files only, by their own type: a symbolic link (to /etc/passwd,
  // to a folder outside) is neither followed nor listed. Directory links are
  // not descended into either (the iterator's default).
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root_, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    std::error_code type_error;
    if (it->symlink_status(type_error).type() == fs::file_type::regular)
      files_.push_back(it->path().lexically_relative(root_).generic_string());
  }
  std::sort(files_.begin(), files_.end());
  root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  buffer_.resize(256 * 1024);

  zip_ = archive_write_new();
  archive_write_set_format_zip(zip_);
  archive_write_zip_set_compression_store(zip_);
  archive_write_set_bytes_per_block(zip_, 64 * 1024);
  archive_write_set_bytes_in_last_block(zip_, 1);
  auto write = [](archive*, void* self, const void* data, size_t length) -> la_ssize_t {
    static_cast<zip_stream*>(self)->push(std::string(static_cast<const char*>(data), length));
    return static_cast<la_ssize_t>(length);
  };
  ok_ = archive_write_open(zip_, this, nullptr, write, nullptr) == ARCHIVE_OK;
}

bool zip_stream::write_step() {
  if (!zip_) {
    open_archive();
    return ok_;
  }
  if (!ok_)
    return false;
  if (file_fd_ >= 0) {
    // The size in the header is what was there when the file was opened.
    auto got =
        ::read(file_fd_, buffer_.data(), std::min<std::uint64_t>(buffer_.size(), file_left_));
    if (got < 0 && errno == EINTR)
      return true;
    if (got > 0) {
      file_left_ -= static_cast<std::uint64_t>(got);
      if (archive_write_data(zip_, buffer_.data(), static_cast<size_t>(got)) < 0)
        ok_ = false;
    }
    if (got <= 0 || file_left_ == 0) {
      ::close(file_fd_);
      file_fd_ = -1;
    }
    return ok_;
  }
  while (next_file_ < files_.size()) {
    auto& file = files_[next_file_++];
    auto name = prefix_ + "/" + file;
    if (!safe_entry_name(name)) {
      log::warning("web", "left " + file + " out of a download of " + root_.string() +
                              ": its name would extract outside the archive's folder");
      continue;
    }
    int fd = root_fd_ < 0 ? -1 : open_beneath(root_fd_, file);
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
    ok_ = archive_write_header(zip_, entry) == ARCHIVE_OK;
    archive_entry_free(entry);
    file_fd_ = fd;
    file_left_ = static_cast<std::uint64_t>(info.st_size);
    return ok_;
  }
  return false; // every file written
}

void zip_stream::close_archive() {
  if (!zip_)
    return;
  if (file_fd_ >= 0) {
    ::close(file_fd_);
    file_fd_ = -1;
  }
  if (root_fd_ >= 0) {
    ::close(root_fd_);
    root_fd_ = -1;
  }
  bool cancelled;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    cancelled = cancelled_;
  }
  if (ok_ && archive_write_close(zip_) != ARCHIVE_OK)
    ok_ = false;
  if (!ok_ && !cancelled)
    log::warning("web",
                 "a download of " + root_.string() + " stopped: " +
                     (archive_error_string(zip_) ? archive_error_string(zip_) : "cancelled"));
  archive_write_free(zip_);
  zip_ = nullptr;
}

} // namespace dcmstreams::web
