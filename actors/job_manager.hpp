#pragma once
// Running jobs: one mailbox actor per stream keeps that stream's FIFO and
// runs `concurrency` jobs at a time, each on a detached runner (blocking
// work: processes, kernels, whole-study I/O); the job manager owns the
// mailboxes and finds a job's mailbox for cancel and re-run.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "streams/registry.hpp"

#include <deque>
#include <filesystem>
#include <map>
#include <memory>

namespace dcmstreams {

struct running_job {
  job_record job;
  std::shared_ptr<cancel_token> cancel;
};

struct stream_mailbox_state {
  std::string stream;
  std::deque<job_record> queue;
  std::map<std::int64_t, running_job> running;
  // Successful run times (Welford's running mean and variance).
  std::uint64_t runs = 0;
  double mean_s = 0;
  double m2 = 0;
  job_store_actor job_store;
  router_actor router; // may be invalid (tests): results are then not routed
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  node_metrics* metrics = nullptr;
  static inline const char* name = "stream-mailbox";
};

stream_mailbox_actor::behavior_type
stream_mailbox(stream_mailbox_actor::stateful_pointer<stream_mailbox_state> self,
               std::string stream, job_store_actor job_store, router_actor router,
               std::shared_ptr<streams::shared_registry> registry, std::filesystem::path data_dir,
               node_metrics* metrics, stream_stats history);

struct job_manager_state {
  std::map<std::string, stream_mailbox_actor> mailboxes;
  std::map<std::string, stream_stats> history;
  job_store_actor job_store;
  router_actor router;
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  node_metrics* metrics = nullptr;
  static inline const char* name = "job-manager";
};

job_manager_actor::behavior_type
job_manager(job_manager_actor::stateful_pointer<job_manager_state> self, job_store_actor job_store,
            router_actor router, std::shared_ptr<streams::shared_registry> registry,
            std::filesystem::path data_dir, node_metrics* metrics,
            std::vector<stream_stats> history);

/// What a stream's definition asks a job to do.
job_plan plan_for(const streams::stream_definition& stream);

} // namespace dcmstreams
