#include "actors/events.hpp"

namespace dcmstreams {

void event_subscription::pull(std::function<void(std::optional<std::string>)> next) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (!queue_.empty()) {
    auto event = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    next(std::move(event));
    return;
  }
  if (closed_) {
    lock.unlock();
    next(std::nullopt);
    return;
  }
  waiting_ = std::move(next);
}

void event_subscription::push(const std::string& event) {
  std::unique_lock<std::mutex> lock{mutex_};
  if (closed_)
    return;
  if (waiting_) {
    auto next = std::move(waiting_);
    waiting_ = nullptr;
    lock.unlock();
    next(event);
    return;
  }
  if (queue_.size() >= max_queued)
    queue_.pop_front();
  queue_.push_back(event);
}

void event_subscription::close() {
  std::unique_lock<std::mutex> lock{mutex_};
  closed_ = true;
  if (waiting_) {
    auto next = std::move(waiting_);
    waiting_ = nullptr;
    lock.unlock();
    next(std::nullopt);
  }
}

void event_hub::publish(const std::string& type, const json::value& data) {
  // Server-sent events: "event: <type>" and one "data:" line (compact JSON
  // has no line breaks).
  std::string event = "event: " + type + "\ndata: " + json::dump(data) + "\n\n";
  std::set<std::shared_ptr<event_subscription>> subscribers;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    subscribers = subscribers_;
  }
  for (auto& s : subscribers)
    s->push(event);
}

std::shared_ptr<event_subscription> event_hub::subscribe() {
  auto subscription = std::make_shared<event_subscription>();
  std::lock_guard<std::mutex> guard{mutex_};
  subscribers_.insert(subscription);
  return subscription;
}

void event_hub::unsubscribe(const std::shared_ptr<event_subscription>& subscription) {
  subscription->close();
  std::lock_guard<std::mutex> guard{mutex_};
  subscribers_.erase(subscription);
}

} // namespace dcmstreams
