#pragma once
// Routing: the router applies routing.json to each finished job and records a
// send task per destination (SQLite, before anything is sent); one sender
// per destination sends them with retries. See docs/routing.md. The router
// watches its senders: one that dies is replaced after a back-off and its
// unfinished sends go on from the database, file by file where they stopped.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "actors/supervisor.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/readiness.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/routing/routing.hpp"
#include "pipeline/routing/storage_client.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>

namespace dcmstreams {

/// What the router and its senders need from the node configuration.
struct routing_settings {
  std::string node_ae;
  std::filesystem::path routing_file;
  std::filesystem::path data_dir;
  sending_config sending;
  std::map<std::string, destination_config> destinations;
  event_hub* events = nullptr; // gets a "send" event at each change of a send; may be null
  /// Gets the routing file's problems ("routing"); may be null.
  readiness_board* readiness = nullptr;
  /// The routing file was named by --routing: its absence is a problem.
  bool routing_file_named = false;
};

struct sender_state {
  std::string destination;
  std::unique_ptr<database> db;
  routing_settings settings;
  storage_client* client = nullptr;
  node_metrics* metrics = nullptr;
  static inline const char* name = "sender";
};

sender_actor::behavior_type sender(sender_actor::stateful_pointer<sender_state> self,
                                   std::string destination, routing_settings settings,
                                   storage_client* client, node_metrics* metrics);

/// The senders, by destination and way of sending. It outlives the router
/// (its supervisor's factory keeps it): a restarted router finds the senders
/// still at work on their sends instead of starting second ones.
using sender_pool = std::map<std::string, sender_actor>;

struct router_state {
  std::unique_ptr<database> db;
  routing_settings settings;
  std::optional<routing_table> table;
  std::string fingerprint; // of routing.json, to notice changes
  std::shared_ptr<sender_pool> senders;
  std::map<std::string, restart_backoff> sender_restarts;
  storage_client* client = nullptr;
  node_metrics* metrics = nullptr;
  static inline const char* name = "router";
};

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   routing_settings settings, storage_client* client,
                                   node_metrics* metrics, std::shared_ptr<sender_pool> senders);

/// The wait before attempt `attempt` + 1: exponential from `retry_initial_s`,
/// capped at `retry_max_s`, with +-20 % jitter so that many sends to one
/// destination that came back do not retry all at once.
double retry_delay_s(const sending_config& sending, std::int64_t attempt, double jitter);

} // namespace dcmstreams
