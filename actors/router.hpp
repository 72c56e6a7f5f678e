#pragma once
// Routing: the router applies routing.json to each finished job and records a
// send task per destination (SQLite, before anything is sent); one sender
// per destination (actors/sender.hpp) sends them with retries. See docs/routing.md. The router
// watches its senders: one that dies is replaced after a back-off and its
// unfinished sends go on from the database, file by file where they stopped.

#include "actors/actors.hpp"
#include "actors/sender.hpp"
#include "actors/supervisor.hpp"
#include "pipeline/routing/routing.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>

namespace dcmstreams {

/// The senders, by destination and way of sending. It outlives the router
/// (its supervisor's factory keeps it): a restarted router finds the senders
/// still at work on their sends instead of starting second ones.
using sender_pool = std::map<std::string, sender_actor>;

/// What the router starts with.
struct router_settings {
  routing_settings routing;
  storage_client* client = nullptr;
  node_metrics* metrics = nullptr;
  /// Kept by the router's supervisor, so that a restarted router finds them.
  std::shared_ptr<sender_pool> senders = std::make_shared<sender_pool>();
};

struct router_state {
  router_settings settings;
  std::unique_ptr<database> db;
  std::optional<routing_table> table;
  std::string fingerprint; // of routing.json, to notice changes
  std::map<std::string, restart_backoff> sender_restarts;
  static inline const char* name = "router";
};

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   router_settings settings);

} // namespace dcmstreams
