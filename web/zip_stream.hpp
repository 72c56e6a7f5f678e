#pragma once
// A ZIP archive of a folder, produced while it is sent (libarchive, entries
// stored, not compressed: DICOM pixel data hardly compresses and the CPU is
// better spent elsewhere). No temporary copy of the study is made: each time
// the client has taken what was written, the next step (an entry's header,
// or up to 256 KiB of a file) runs on the bounded file pool, so a download
// holds no thread of its own and never blocks an I/O thread.

#include "web/http.hpp"
#include "web/work_pool.hpp"

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

struct archive;

namespace dcmstreams::web {

class zip_stream : public body_stream, public std::enable_shared_from_this<zip_stream> {
public:
  /// Make it with std::make_shared: each step on `pool` holds the stream
  /// until it is done. Every regular file under `root`, named
  /// `prefix/<path below root>`. Symbolic links are never followed, and no
  /// entry name leaves the archive's folder.
  zip_stream(std::filesystem::path root, std::string prefix, work_pool& pool);
  ~zip_stream() override;

  void pull(std::function<void(std::optional<std::string>)> next) override;
  void cancel() override;

private:
  /// On the pool: writes until a block is ready or the archive is done, then
  /// gives the waiting client what there is.
  void produce_some();
  /// One step of writing; false when there is nothing more to write.
  bool write_step();
  void open_archive();
  void close_archive();
  /// Called by libarchive with each block.
  void push(std::string block);

  std::filesystem::path root_;
  std::string prefix_;
  work_pool& pool_;

  // Used only by the step under way (one at a time).
  archive* zip_ = nullptr;
  bool ok_ = true;
  std::vector<std::string> files_; // relative to root_, in order
  std::size_t next_file_ = 0;
  int root_fd_ = -1;
  int file_fd_ = -1;
  std::uint64_t file_left_ = 0;
  std::vector<char> buffer_;

  std::mutex mutex_;
  std::deque<std::string> blocks_;
  std::function<void(std::optional<std::string>)> waiting_;
  bool producing_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
};

} // namespace dcmstreams::web
