#include "actors/supervisor.hpp"

#include "pipeline/foundation/log.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dcmstreams {

std::optional<double> restart_backoff::record_death(epoch_ms now) {
  deaths_.erase(std::remove_if(deaths_.begin(), deaths_.end(),
                               [now](epoch_ms at) { return now - at > window_ms; }),
                deaths_.end());
  deaths_.push_back(now);
  if (deaths_.size() > max_restarts)
    return std::nullopt;
  return std::min(longest_delay_s,
                  first_delay_s * std::pow(2.0, static_cast<double>(deaths_.size() - 1)));
}

std::string restart_backoff::describe(double delay_s) const {
  char text[64];
  std::snprintf(text, sizeof text, "in %.1f s (restart %zu in ten minutes)", delay_s,
                deaths_.size());
  return text;
}

std::optional<double> record_death(restart_backoff& backoff, const death_notice& notice,
                                   const caf::error& reason, node_metrics* metrics) {
  auto why = reason ? describe(reason) : std::string{"it quit on its own"};
  auto delay = backoff.record_death(now_ms());
  if (!delay) {
    log::error(notice.component, notice.what + " stopped (" + why + "), its " +
                                     std::to_string(backoff.recent()) +
                                     "th death in ten minutes: " + notice.give_up_consequence);
    return std::nullopt;
  }
  log::error(notice.component, notice.what + " stopped (" + why + "); " + notice.restart_how + " " +
                                   backoff.describe(*delay));
  if (metrics)
    metrics->actor_restarts.with({notice.label}).increment();
  return delay;
}

namespace {

constexpr const char* component = "supervisor";

using supervisor_pointer = caf::stateful_actor<supervisor_state>*;

void start_child(supervisor_pointer self, bool restarted) {
  auto& st = self->state;
  st.child = st.factory(self->system(), restarted, caf::actor{self});
  // Monitored, not linked: its death, whatever the reason, reaches the down
  // handler, and the supervisor stops it itself when the node stops.
  self->monitor(st.child);
  while (!st.held.empty()) {
    auto& [promise, content] = st.held.front();
    promise.delegate(st.child, std::move(content));
    st.held.pop_front();
  }
}

/// Requesters of held messages learn that no answer will come.
void refuse_held(supervisor_pointer self, const std::string& why) {
  for (auto& [promise, content] : self->state.held)
    promise.deliver(make_error(ec::unavailable, why));
  self->state.held.clear();
}

void child_died(supervisor_pointer self, const caf::error& reason) {
  auto& st = self->state;
  death_notice notice{component, "the " + st.child_name + " actor", st.child_name,
                      "messages to it wait; it restarts with its state from the database",
                      "giving up on restarting it"};
  auto delay = record_death(st.backoff, notice, reason, st.metrics);
  if (!delay) {
    refuse_held(self, "the " + st.child_name + " actor keeps failing");
    self->quit(reason ? reason : make_error(ec::unspecified, "it quit on its own"));
    return;
  }
  self->delayed_send(self, seconds(*delay), restart_atom::value);
}

} // namespace

caf::behavior supervisor(supervisor_pointer self, std::string child_name, actor_factory factory,
                         node_metrics* metrics) {
  auto& st = self->state;
  st.child_name = std::move(child_name);
  st.factory = std::move(factory);
  st.metrics = metrics;
  self->set_default_handler(
      [](caf::scheduled_actor* base, caf::message_view& view) -> caf::result<caf::message> {
        auto self = static_cast<supervisor_pointer>(base);
        auto promise = self->make_response_promise();
        auto content = view.move_content_to_message();
        // A child the test hook is crashing would drop what it gets now.
        if (self->state.child && !self->state.crash_requested)
          promise.delegate(self->state.child, std::move(content));
        else if (self->state.stopping)
          promise.deliver(make_error(ec::unavailable, "the node is stopping"));
        else
          self->state.held.emplace_back(std::move(promise), std::move(content));
        return caf::delegated<caf::message>{};
      });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (!st.child || msg.source != st.child.address())
      return;
    st.child = caf::actor{};
    st.crash_requested = false;
    if (st.stopping)
      self->quit(st.stop_reason);
    else
      child_died(self, msg.reason);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (!msg.reason)
      return; // a linked actor that ended normally
    // The node stops: the actor stops first, then the supervisor.
    st.stopping = true;
    st.stop_reason = msg.reason;
    refuse_held(self, "the node is stopping");
    if (st.child)
      self->send_exit(st.child, msg.reason);
    else
      self->quit(msg.reason);
  });
  start_child(self, false);
  return {
      [self](restart_atom) {
        auto& st = self->state;
        if (st.stopping || st.child)
          return;
        log::info(component, "the " + st.child_name + " actor is back");
        start_child(self, true);
      },
      [self](crash_atom) {
        auto& st = self->state;
        if (!st.child || st.crash_requested)
          return false;
        st.crash_requested = true;
        log::warning(component, "test hook: killing the " + st.child_name + " actor");
        crash_for_test(caf::actor_cast<caf::strong_actor_ptr>(st.child), "killed by a test hook");
        return true;
      },
  };
}

} // namespace dcmstreams
