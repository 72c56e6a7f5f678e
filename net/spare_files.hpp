#pragma once
// Empty files created ahead of time for instances to be received into.
//
// Creating a file is the most expensive step of storing a small instance on
// ext4 (the inode allocator skips recently deleted inodes); a background
// thread does it while associations wait for the network, so the C-STORE
// path only writes, syncs and renames.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace dcmstreams::net {

struct spare_file {
  int fd = -1;                // open for writing, empty
  std::filesystem::path path; // in the folder the pool fills
  int error = 0;              // errno if no file could be created
};

class spare_file_pool {
public:
  /// Keeps up to `target` files ready in `dir`.
  spare_file_pool(std::filesystem::path dir, std::size_t target);
  /// Stops the refill thread and removes the files nobody took.
  ~spare_file_pool();
  spare_file_pool(const spare_file_pool&) = delete;
  spare_file_pool& operator=(const spare_file_pool&) = delete;

  /// A ready file, or one created right now if none is ready.
  spare_file take();

private:
  spare_file create();
  void refill();

  std::filesystem::path dir_;
  std::size_t target_;
  std::mutex mutex_;
  std::condition_variable wanted_;
  std::deque<spare_file> ready_;
  bool stopping_ = false;
  std::uint64_t sequence_ = 0;
  std::thread refiller_;
};

} // namespace dcmstreams::net
