#pragma once
// A worker process's actor (actors.hpp, docs/cluster.md): what the head talks
// to once the worker joined. It answers heartbeats with the number of jobs
// running here and starts a run (actors/worker_run.hpp) for each job the
// head hands over.

#include "actors/actors.hpp"

#include <filesystem>

namespace dcmstreams {

struct cluster_worker_settings {
  worker_info info;
  std::filesystem::path work_dir; // where runs keep their files (--data)
};

struct cluster_worker_state {
  cluster_worker_settings settings;
  std::uint32_t running = 0;
  std::uint64_t runs = 0; // started since this worker started
  static inline const char* name = "cluster-worker";
};

worker_actor::behavior_type
cluster_worker(worker_actor::stateful_pointer<cluster_worker_state> self,
               cluster_worker_settings settings);

} // namespace dcmstreams
