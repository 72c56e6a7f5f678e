#include "web/zip_stream.hpp"

#include "pipeline/log.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>

namespace dcmstreams::web {

namespace fs = std::filesystem;

zip_stream::zip_stream(fs::path root, std::string prefix)
    : root_(std::move(root)), prefix_(std::move(prefix)) {
  worker_ = std::thread([this] { produce(); });
}

zip_stream::~zip_stream() {
  cancel();
  if (worker_.joinable())
    worker_.join();
}

void zip_stream::cancel() {
  std::lock_guard<std::mutex> guard{mutex_};
  cancelled_ = true;
  space_.notify_all();
}

void zip_stream::pull(std::function<void(std::optional<std::string>)> next) {
  std::unique_lock<std::mutex> lock{mutex_};
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
  std::vector<fs::path> files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root_, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error))
    if (it->is_regular_file())
      files.push_back(it->path());
  std::sort(files.begin(), files.end());

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
    std::ifstream in{file, std::ios::binary};
    if (!in)
      continue; // deleted meanwhile
    archive_entry* entry = archive_entry_new();
    auto name = prefix_ + "/" + fs::relative(file, root_).generic_string();
    archive_entry_set_pathname(entry, name.c_str());
    archive_entry_set_size(entry, static_cast<la_int64_t>(fs::file_size(file, error)));
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0644);
    struct stat info {};
    if (::stat(file.c_str(), &info) == 0)
      archive_entry_set_mtime(entry, info.st_mtime, 0);
    ok = archive_write_header(zip, entry) == ARCHIVE_OK;
    archive_entry_free(entry);
    while (ok && in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      auto got = in.gcount();
      if (got > 0 && archive_write_data(zip, buffer.data(), static_cast<size_t>(got)) < 0)
        ok = false;
    }
  }
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
