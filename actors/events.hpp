#pragma once
// The live event feed: actors publish what changed (a job, a send, the
// pending studies) as JSON; every subscriber (an open /api/v1/events
// connection) gets each event in order. A slow subscriber loses the oldest
// events beyond its buffer rather than slowing the node down.

#include "pipeline/foundation/json.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace dcmstreams {

class event_subscription {
public:
  /// Calls `next` with the next event (now if one waits), or with nothing
  /// once the subscription is closed.
  void pull(std::function<void(std::optional<std::string>)> next);
  void close();

private:
  friend class event_hub;
  void push(const std::string& event);

  std::mutex mutex_;
  std::deque<std::string> queue_;
  std::function<void(std::optional<std::string>)> waiting_;
  bool closed_ = false;
  static constexpr std::size_t max_queued = 1000;
};

class event_hub {
public:
  /// `type` names the event ("job", "send", "studies"); `data` is its data.
  void publish(const std::string& type, const json::value& data);
  std::shared_ptr<event_subscription> subscribe();
  void unsubscribe(const std::shared_ptr<event_subscription>& subscription);

private:
  std::mutex mutex_;
  std::set<std::shared_ptr<event_subscription>> subscribers_;
};

} // namespace dcmstreams
