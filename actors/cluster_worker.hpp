#pragma once
// A worker process's actor (actors.hpp, docs/cluster.md): what the head talks
// to once the worker joined. It answers heartbeats with the number of jobs
// running here.

#include "actors/actors.hpp"

namespace dcmstreams {

struct cluster_worker_settings {
  worker_info info;
};

struct cluster_worker_state {
  cluster_worker_settings settings;
  std::uint32_t running = 0;
  static inline const char* name = "cluster-worker";
};

worker_actor::behavior_type
cluster_worker(worker_actor::stateful_pointer<cluster_worker_state> self,
               cluster_worker_settings settings);

} // namespace dcmstreams
