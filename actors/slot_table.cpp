#include "actors/slot_table.hpp"

namespace dcmstreams {

std::optional<placement> slot_table::take(bool head_only) {
  std::lock_guard<std::mutex> lock{mutex_};
  return take_locked(head_only);
}

std::optional<placement> slot_table::take_or_wait(bool head_only, std::function<void()> wake) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto slot = take_locked(head_only);
  if (!slot)
    waiters_.push_back(std::move(wake));
  return slot;
}

void slot_table::wake_waiters(std::unique_lock<std::mutex>& lock) {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  lock.unlock();
  for (auto& wake : waiters)
    wake();
}

std::optional<placement> slot_table::take_locked(bool head_only) {
  placement slot;
  if (head_only) {
    if (head_slots_ > 0 && head_taken_ >= head_slots_)
      return std::nullopt;
    ++head_taken_;
    slot.attempt = next_attempt_++;
    return slot;
  }
  // Load as a fraction of slots; compared by cross-multiplying.
  const worker_slots* best = nullptr;
  const std::string* best_name = nullptr;
  std::uint64_t best_taken = head_taken_, best_slots = head_slots_;
  bool head_free = head_taken_ < head_slots_;
  for (auto& [name, w] : workers_) {
    if (!w.joined || w.taken >= w.slots)
      continue;
    auto load = w.taken * best_slots, best_load = best_taken * w.slots;
    bool better = (!head_free && !best) || load < best_load ||
                  (best && load == best_load && w.last_run < best->last_run);
    if (better) {
      best = &w;
      best_name = &name;
      best_taken = w.taken;
      best_slots = w.slots;
    }
  }
  if (!best && !head_free)
    return std::nullopt;
  slot.attempt = next_attempt_++;
  if (!best) {
    ++head_taken_;
    return slot;
  }
  auto& chosen = workers_[*best_name];
  ++chosen.taken;
  chosen.last_run = slot.attempt;
  slot.worker = *best_name;
  slot.handle = chosen.handle;
  slot.epoch = chosen.epoch;
  return slot;
}

void slot_table::release(const placement& slot) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (slot.worker.empty()) {
    if (head_taken_ > 0)
      --head_taken_;
  } else {
    auto it = workers_.find(slot.worker);
    // A slot of an earlier epoch was given up when the worker was lost.
    if (it != workers_.end() && it->second.epoch == slot.epoch && it->second.taken > 0)
      --it->second.taken;
  }
  wake_waiters(lock);
}

bool slot_table::alive(const placement& slot) const {
  if (slot.worker.empty())
    return true;
  std::lock_guard<std::mutex> lock{mutex_};
  auto it = workers_.find(slot.worker);
  return it != workers_.end() && it->second.joined && it->second.epoch == slot.epoch;
}

void slot_table::joined(const std::string& name, const worker_actor& handle, std::uint32_t slots) {
  std::unique_lock<std::mutex> lock{mutex_};
  auto& w = workers_[name];
  w.handle = handle;
  w.slots = slots;
  w.taken = 0;
  ++w.epoch;
  w.joined = true;
  wake_waiters(lock);
}

void slot_table::back(const std::string& name) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (auto it = workers_.find(name); it != workers_.end())
    it->second.joined = true;
  wake_waiters(lock);
}

void slot_table::lost(const std::string& name) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto it = workers_.find(name);
  if (it == workers_.end())
    return;
  it->second.joined = false;
  it->second.taken = 0;
  ++it->second.epoch;
}

std::map<std::string, std::uint32_t> slot_table::taken() const {
  std::lock_guard<std::mutex> lock{mutex_};
  std::map<std::string, std::uint32_t> runs{{"", head_taken_}};
  for (auto& [name, w] : workers_)
    if (w.joined)
      runs[name] = w.taken;
  return runs;
}

bool slot_table::any_slots() const {
  std::lock_guard<std::mutex> lock{mutex_};
  if (head_slots_ > 0)
    return true;
  for (auto& [name, w] : workers_)
    if (w.joined)
      return true;
  return false;
}

} // namespace dcmstreams
