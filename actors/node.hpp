#pragma once
// Spawning and stopping the node's long-lived actors. Spawn functions read
// the configuration; actors get plain typed arguments. Each long-lived actor
// runs under a supervisor (actors/supervisor.hpp): the handles here are the
// supervisors' and stay valid when an actor is restarted.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "actors/router.hpp"
#include "actors/slot_table.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/readiness.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/intake_backlog.hpp"
#include "pipeline/routing/storage_client.hpp"
#include "pipeline/routing/webhook_client.hpp"
#include "streams/registry.hpp"

#include <map>
#include <memory>

namespace dcmstreams {

struct node_actors {
  std::shared_ptr<streams::shared_registry> registry;
  /// Problems of the streams folder and the routing file, for /readyz.
  std::shared_ptr<readiness_board> readiness;
  /// Where received instances wait for their study to complete.
  std::shared_ptr<journal> ingest_journal;
  /// Instances of completed studies waiting for their jobs (completion.max_backlog).
  std::shared_ptr<intake_backlog> backlog;
  job_store_actor job_store;
  router_actor router;
  job_manager_actor job_manager;
  assembler_actor assembler;
  registry_actor watcher;
  scrubber_actor scrubber;
  notifier_actor notifier; // invalid without a webhook client
  /// With a cluster (cluster.port): where jobs run, the head's slots and the
  /// workers' (the cluster head keeps the workers in it up to date).
  std::shared_ptr<slot_table> slots;
  /// The router's senders, which outlive a router that dies.
  std::shared_ptr<sender_pool> senders;
  /// Every supervised actor by the name its restarts are counted under.
  std::map<std::string, caf::actor> by_name() const;
};

/// Loads the streams, spawns the job store, recovers what a stopped node left
/// behind (interrupted jobs, pending studies, unfinished sends) and spawns
/// the router, the job manager, the assembler and the streams watcher.
/// `client` sends results out, `webhooks` (if any) notifies of ended jobs;
/// both must outlive the actors.
result<node_actors> spawn_node(caf::actor_system& system, const node_config& config,
                               std::shared_ptr<database> db, node_metrics& metrics,
                               storage_client& client, event_hub* events = nullptr,
                               webhook_client* webhooks = nullptr);

/// Sends every long-lived actor an exit and waits until they are gone, the
/// router's senders last.
void stop_node(caf::actor_system& system, node_actors& actors);

/// Sends each actor an exit and waits until it is gone, in this order.
void stop_actors(caf::actor_system& system, const std::vector<caf::actor>& actors);

} // namespace dcmstreams
