#include "web/work_pool.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams::web {

work_pool::work_pool(std::string name, std::size_t threads, std::size_t queue_capacity)
    : name_(std::move(name)), capacity_(queue_capacity) {
  for (std::size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

work_pool::~work_pool() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& thread : threads_)
    thread.join();
}

bool work_pool::try_post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (stopping_ || queue_.size() >= capacity_)
      return false;
    queue_.push_back(std::move(work));
  }
  ready_.notify_one();
  return true;
}

bool work_pool::post_continuation(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (stopping_)
      return false;
    queue_.push_back(std::move(work));
  }
  ready_.notify_one();
  return true;
}

void work_pool::run() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock{mutex_};
      ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return; // stopping, and nothing left
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      work();
    } catch (const std::exception& e) {
      log::error("web", name_ + " work failed: " + e.what());
    }
  }
}

} // namespace dcmstreams::web
