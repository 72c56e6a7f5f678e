#include "pipeline/jobs/intake_backlog.hpp"

#include <algorithm>

namespace dcmstreams {

void intake_backlog::add(std::uint64_t instances) {
  std::lock_guard lock(mutex_);
  size_ += instances;
}

void intake_backlog::remove(std::uint64_t instances) {
  {
    std::lock_guard lock(mutex_);
    size_ -= std::min(instances, size_);
    if (limit_ == 0 || size_ > limit_)
      return;
  }
  room_.notify_all();
}

std::uint64_t intake_backlog::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

bool intake_backlog::behind() const {
  std::lock_guard lock(mutex_);
  return limit_ != 0 && size_ > limit_;
}

intake_backlog::wait_outcome intake_backlog::wait_for_room() {
  wait_outcome outcome;
  if (limit_ == 0)
    return outcome;
  std::unique_lock lock(mutex_);
  if (size_ <= limit_) {
    if (stretch_told_) {
      stretch_told_ = false;
      outcome.caught_up = true;
      outcome.backlog = size_;
    }
    return outcome;
  }
  if (!stretch_told_) {
    stretch_told_ = true;
    outcome.began_waiting = true;
    outcome.backlog = size_;
  }
  auto start = std::chrono::steady_clock::now();
  room_.wait_for(lock, max_wait_, [this] { return size_ <= limit_; });
  outcome.waited = std::chrono::steady_clock::now() - start;
  return outcome;
}

} // namespace dcmstreams
