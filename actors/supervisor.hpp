#pragma once
// In-process supervision. A supervisor stands in front of one long-lived
// actor under a handle that never changes, so nobody holding that handle
// (the listener bridge, the API, other actors) has to learn of a restart.
// It passes every message on, requests included (the actor answers the
// requester directly). When the actor dies it is started again after a
// back-off; messages that arrive meanwhile wait in the supervisor and go to
// the new actor in their order. What the actor had only in memory comes back
// from SQLite and the data folder: its factory is told that it restarts.
// Too many deaths in a row and the supervisor gives up and stops with the
// actor's error; the node then stops and systemd starts it again.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dcmstreams {

/// When to restart an actor that died: 0.5 s after its first death in ten
/// minutes, twice as long after each further one, at most 30 s. A death
/// beyond `max_restarts` in ten minutes is a crash loop: give up.
class restart_backoff {
public:
  static constexpr epoch_ms window_ms = 10 * 60 * 1000;
  static constexpr double first_delay_s = 0.5;
  static constexpr double longest_delay_s = 30;
  static constexpr std::size_t max_restarts = 5;

  /// Records a death at `now`; the seconds to wait before the restart, or
  /// nothing when the deaths in the window are too many.
  std::optional<double> record_death(epoch_ms now);
  /// Deaths in the window, the last one included.
  std::size_t recent() const { return deaths_.size(); }
  /// "restarting it in 0.5 s (restart 1 in ten minutes)", for the logs.
  std::string describe(double delay_s) const;

private:
  std::vector<epoch_ms> deaths_;
};

/// One death of a supervised actor `what` ("the sender to pacs"): recorded in
/// `backoff`, logged under `component` with `restart_how` (what its restart
/// brings back) or `give_up_consequence`, counted under `label`. Returns the
/// seconds before the restart, or nothing when the supervisor must give up
/// and stop with `reason`.
struct death_notice {
  const char* component;
  std::string what;
  std::string label;
  std::string restart_how;
  std::string give_up_consequence;
};
std::optional<double> record_death(restart_backoff& backoff, const death_notice& notice,
                                   const caf::error& reason, node_metrics* metrics);

/// Starts the supervised actor; `restarted` is false the first time.
/// `supervisor` is the handle others reach the actor by, for an actor that
/// hands out its own address (replies to it must reach the next one too).
using actor_factory =
    std::function<caf::actor(caf::actor_system&, bool restarted, const caf::actor& supervisor)>;

/// The factory of a detached actor with nothing to rebuild on a restart:
/// `behavior` is spawned with the same arguments each time.
template <class Behavior, class... Args>
actor_factory detached_actor(Behavior behavior, Args... args) {
  return [=](caf::actor_system& system, bool, const caf::actor&) {
    return caf::actor_cast<caf::actor>(system.spawn<caf::detached>(behavior, args...));
  };
}

struct supervisor_state {
  std::string child_name; // the `actor` label of dcmstreams_actor_restarts_total
  actor_factory factory;
  node_metrics* metrics = nullptr;
  caf::actor child; // invalid while a restart is due
  restart_backoff backoff;
  // Messages that arrived while there was no actor, with their requesters.
  std::deque<std::pair<caf::response_promise, caf::message>> held;
  bool stopping = false;
  caf::error stop_reason;
  bool crash_requested = false; // by the test hook, until its down message comes
  static inline const char* name = "supervisor";
};

/// Dynamically typed: it accepts any message and passes it on. Its own are
/// (restart_atom), the back-off timer, and (crash_atom), a test hook that
/// crashes the actor and replies whether there was one.
caf::behavior supervisor(caf::stateful_actor<supervisor_state>* self, std::string child_name,
                         actor_factory factory, node_metrics* metrics);

/// Spawns a supervisor for the actor `factory` starts and returns it under
/// the actor's own interface.
template <class Handle>
Handle spawn_supervised(caf::actor_system& system, std::string child_name, actor_factory factory,
                        node_metrics* metrics) {
  return caf::actor_cast<Handle>(
      system.spawn(supervisor, std::move(child_name), std::move(factory), metrics));
}

} // namespace dcmstreams
