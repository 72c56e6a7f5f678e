#pragma once
// The listener watchdog: together with the supervisors of the long-lived
// actors (actors/supervisor.hpp) and systemd's Restart=always it replaces
// the old appliance's monit (docs/operations.md).

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"

#include <functional>
#include <string>

namespace dcmstreams {

struct watchdog_settings {
  double interval_s = 30;
  /// Unanswered probes in a row before the listener is restarted.
  int misses_before_restart = 2;
  /// Asks the listener; "" when it answered, else what went wrong. Blocks
  /// for at most its own timeout.
  std::function<std::string()> probe;
  /// Restarts the listener on its port.
  std::function<status()> restart;
  node_metrics* metrics = nullptr;
};

struct watchdog_state {
  watchdog_settings settings;
  int misses = 0;
  static inline const char* name = "watchdog";
};

watchdog_actor::behavior_type watchdog(watchdog_actor::stateful_pointer<watchdog_state> self,
                                       watchdog_settings settings);

} // namespace dcmstreams
