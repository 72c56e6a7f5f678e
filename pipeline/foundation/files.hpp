#pragma once
// File-system helpers with the durability rules of DESIGN §6: write to a
// temporary name, sync, rename, sync the folder.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dcmstreams {

result<std::string> read_text_file(const std::filesystem::path& path);

/// Writes `content` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old or the new file, never a part. With
/// `durable`, the file and its folder are synced before returning.
status write_file_atomically(const std::filesystem::path& path, std::string_view content,
                             bool durable);

/// Writes all of `content` to `fd`, going on after short writes and EINTR;
/// 0, or the errno of the write that failed (ENOSPC: the disk is full).
int write_fully(int fd, std::string_view content);

/// fsync on a folder, so that a rename or a new entry in it survives power loss.
status sync_directory(const std::filesystem::path& dir);

/// syncfs on the file system holding `path`: one flush for every file and
/// folder written there (cheaper than syncing many files one by one).
status sync_file_system(const std::filesystem::path& path);

/// fdatasync on a file by name.
status sync_file(const std::filesystem::path& file);

/// Creates `dir` and missing parents; with `durable`, syncs each parent whose
/// entries changed.
status create_directories(const std::filesystem::path& dir, bool durable);

/// The file system holding `path`, as statvfs sees it.
struct disk_space {
  std::uint64_t free = 0;  // bytes unprivileged users may still write
  std::uint64_t total = 0; // bytes in all
  double used_pct = 0;     // of what unprivileged users can use, as df shows it
};
result<disk_space> disk_space_of(const std::filesystem::path& path);

/// A problem if the folder cannot be written (a read-only file system, as
/// after a remount on disk errors, or missing permissions), in words.
status check_writable(const std::filesystem::path& dir);

/// Free space for unprivileged users on the file system holding `path`, in bytes.
result<std::uint64_t> free_bytes(const std::filesystem::path& path);

/// A message for errno, such as "No space left on device".
std::string errno_text(int error_number);

} // namespace dcmstreams
