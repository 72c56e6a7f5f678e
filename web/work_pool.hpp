#pragma once
// A fixed number of threads taking work from a bounded queue, for blocking
// work that must stay off the HTTP I/O threads (password hashing, reading a
// job folder, unpacking uploads, writing ZIP downloads). When the queue is
// full, new work is refused at once: the caller answers 503 instead of piling
// up threads or memory.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dcmstreams::web {

class work_pool {
public:
  work_pool(std::string name, std::size_t threads, std::size_t queue_capacity);
  ~work_pool(); // finishes queued work, then joins
  work_pool(const work_pool&) = delete;
  work_pool& operator=(const work_pool&) = delete;

  /// Queues `work`; false (and `work` dropped) when the queue is full.
  bool try_post(std::function<void()> work);
  /// Queues the next step of work already under way (the next blocks of a
  /// download whose answer has started), even when the queue is full: it
  /// cannot be refused any more. Each such piece of work queues at most one
  /// step at a time, so these stay as few as the open responses. False only
  /// while the pool stops.
  bool post_continuation(std::function<void()> work);

private:
  void run();

  std::string name_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

} // namespace dcmstreams::web
