#pragma once
// A sender: one per destination and way of sending (actors/router.hpp makes
// them). It takes send tasks by id, in order, and sends each task's files that
// the destination does not have yet, recording every file's outcome before
// the next goes, so that a restart sends at most the files in flight again.
// The policy (a file's state, retry delays, the verdict after an attempt) is
// pipeline/routing/send_policy.hpp.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/readiness.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/routing/storage_client.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace dcmstreams {

/// What the router and its senders need from the node configuration.
struct routing_settings {
  std::string node_ae;
  std::filesystem::path routing_file;
  std::filesystem::path data_dir;
  pseudonym_settings pseudonyms; // node_config::pseudonyms()
  sending_config sending;
  std::map<std::string, destination_config> destinations;
  event_hub* events = nullptr; // gets a "send" event at each change of a send; may be null
  /// Gets the routing file's problems ("routing"); may be null.
  readiness_board* readiness = nullptr;
  /// The routing file was named by --routing: its absence is a problem.
  bool routing_file_named = false;
};

/// What a sender starts with.
struct sender_settings {
  std::string destination; // the `destinations` entry, or "AET@host:port"
  routing_settings routing;
  storage_client* client = nullptr;
  node_metrics* metrics = nullptr;
};

struct sender_state {
  sender_settings settings;
  std::unique_ptr<database> db;
  static inline const char* name = "sender";
};

sender_actor::behavior_type sender(sender_actor::stateful_pointer<sender_state> self,
                                   sender_settings settings);

/// Tells the event feed of a send's state.
void publish_send(const routing_settings& settings, const send_task& task);
/// Records a send's new state in `db` and tells the event feed.
void save_send(database& db, const routing_settings& settings, const send_task& task);

} // namespace dcmstreams
