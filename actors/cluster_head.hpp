#pragma once
// The head's side of the cluster (actors.hpp, docs/cluster.md): the workers
// that joined, by name. Each is monitored (a closed connection or a dead
// process is known at once) and asked for a heartbeat every
// cluster.heartbeat_s; one that leaves it unanswered for cluster.lost_after_s
// (a hung process, a partition that keeps the connection open) counts as
// lost until it answers again.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "actors/slot_table.hpp"
#include "pipeline/foundation/config.hpp"

#include <map>
#include <string>

namespace dcmstreams {

struct cluster_head_settings {
  cluster_config cluster;
  node_metrics* metrics = nullptr;
  /// Where jobs run: told of every join and loss (none: workers only join).
  std::shared_ptr<slot_table> slots;
};

struct joined_worker {
  worker_status status;
  worker_actor handle; // invalid once its connection is gone
  bool asked = false;  // a heartbeat is on its way
  epoch_ms asked_at = 0;
};

struct cluster_head_state {
  cluster_head_settings settings;
  std::map<std::string, joined_worker> workers; // by name
  static inline const char* name = "cluster-head";
};

cluster_head_actor::behavior_type
cluster_head(cluster_head_actor::stateful_pointer<cluster_head_state> self,
             cluster_head_settings settings);

} // namespace dcmstreams
