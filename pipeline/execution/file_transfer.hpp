#pragma once
// Moving a job's files between head and worker in chunks (docs/cluster.md).
// The side that receives asks for one chunk at a time and keeps at most a
// window of them outstanding, so memory stays flat whatever the size of a
// study; CAF's connection has no flow control of its own. Plain blocking
// file I/O: the actors that use it run detached.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams {

/// One file of a transfer: its path relative to the folder it moves from.
struct transfer_file {
  std::string path;
  std::uint64_t size = 0;
};

/// How much one chunk carries, and how many chunks may be on their way
/// (bench/cluster.py measures the choice).
extern const std::uint64_t transfer_chunk_bytes;
extern const std::size_t transfer_window;

/// The regular files under `root` (every level; symbolic links are neither
/// followed nor sent), sorted by path. A missing root is an empty list.
result<std::vector<transfer_file>> list_transfer_files(const std::filesystem::path& root);

/// Whether a relative path from a peer stays inside the folder it is meant
/// for: no absolute path, no empty, "." or ".." component.
bool safe_relative_path(std::string_view path);

/// Serves chunks of the files of a transfer from their folder.
class chunk_reader {
public:
  chunk_reader(std::filesystem::path root, std::vector<transfer_file> files);
  ~chunk_reader();
  chunk_reader(const chunk_reader&) = delete;
  chunk_reader& operator=(const chunk_reader&) = delete;

  /// Up to transfer_chunk_bytes of file number `file` from `offset`.
  result<std::vector<char>> read(std::uint32_t file, std::uint64_t offset);

private:
  std::filesystem::path root_;
  std::vector<transfer_file> files_;
  std::vector<int> fds_; // opened on first read, -1 before
};

/// A chunk to ask the other side for.
struct chunk_request {
  std::uint32_t file = 0;
  std::uint64_t offset = 0;
};

/// Receives the files of a transfer into a folder, asking for chunks in
/// order with at most `window` outstanding.
class chunk_writer {
public:
  chunk_writer(std::filesystem::path root, std::vector<transfer_file> files);
  chunk_writer(std::filesystem::path root, std::vector<transfer_file> files, std::size_t window);
  ~chunk_writer();
  chunk_writer(const chunk_writer&) = delete;
  chunk_writer& operator=(const chunk_writer&) = delete;

  /// Checks every path and creates the files (empty ones are complete at once).
  status open();
  /// The next chunk to ask for, while fewer than the window are outstanding.
  std::optional<chunk_request> next();
  /// Writes a chunk that arrived; a problem if it was not asked for, does not
  /// fit the file, or cannot be written.
  status accept(std::uint32_t file, std::uint64_t offset, const std::vector<char>& data);
  bool complete() const { return received_ == total_; }
  std::uint64_t bytes_received() const { return received_; }
  std::uint64_t bytes_total() const { return total_; }

private:
  std::filesystem::path root_;
  std::vector<transfer_file> files_;
  std::vector<int> fds_;
  std::size_t window_;
  std::size_t outstanding_ = 0;
  std::uint32_t next_file_ = 0;
  std::uint64_t next_offset_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t total_ = 0;
};

} // namespace dcmstreams
