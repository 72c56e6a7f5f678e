#pragma once
// A ZIP archive of a folder, produced while it is sent (libarchive, entries
// stored, not compressed: DICOM pixel data hardly compresses and the CPU is
// better spent elsewhere). No temporary copy of the study is made; a worker
// thread reads the files and stays at most a few blocks ahead of the client.

#include "web/http.hpp"

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

namespace dcmstreams::web {

class zip_stream : public body_stream, public std::enable_shared_from_this<zip_stream> {
public:
  /// Make it with std::make_shared: the worker that writes the ZIP starts at
  /// the first pull and holds the stream until it is done.
  /// Every regular file under `root`, named `prefix/<path below root>`. Symbolic
  /// links are never followed, and no entry name leaves the archive's folder.
  zip_stream(std::filesystem::path root, std::string prefix);
  ~zip_stream() override;

  void pull(std::function<void(std::optional<std::string>)> next) override;
  void cancel() override;

private:
  void produce();
  /// Called by libarchive with each block; blocks while the client is behind.
  bool push(std::string block);

  std::filesystem::path root_;
  std::string prefix_;
  std::mutex mutex_;
  std::condition_variable space_;
  std::deque<std::string> blocks_;
  std::function<void(std::optional<std::string>)> waiting_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::thread worker_;
  bool started_ = false;
  static constexpr std::size_t max_blocks = 8;
};

} // namespace dcmstreams::web
