#pragma once
// Empty files created ahead of time, to be written and renamed into place.
//
// Creating a file is the most expensive step of writing a small file on ext4
// (the inode allocator skips recently deleted inodes: about 0.4 ms of CPU
// each on a cloud disk); a background thread does it ahead of need, so the
// paths that write many files (large data sets arriving, a completing study's
// instances leaving the journal) only write and rename.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace dcmstreams {

struct spare_file {
  int fd = -1;                // open for writing, empty (-1 for a pool that keeps files closed)
  std::filesystem::path path; // in the folder the pool fills
  int error = 0;              // errno if no file could be created
};

class spare_file_pool {
public:
  /// Keeps up to `target` files ready in `dir`, named "<name>-<pid>-<n>.part"
  /// (pools sharing a folder need different names). A pool that does not
  /// keep them open holds no descriptors (for large targets); its refill
  /// thread runs at `refill_niceness`, so that it yields to ingest.
  spare_file_pool(std::filesystem::path dir, std::string name, std::size_t target,
                  bool keep_open = true, int refill_niceness = 0);
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
  std::string name_;
  std::size_t target_;
  bool keep_open_;
  int refill_niceness_;
  std::mutex mutex_;
  std::condition_variable wanted_;
  std::deque<spare_file> ready_;
  bool stopping_ = false;
  std::uint64_t sequence_ = 0;
  std::thread refiller_;
};

} // namespace dcmstreams
