#pragma once
// Running jobs: one mailbox actor per stream keeps that stream's FIFO and
// runs `concurrency` jobs at a time, each on a detached runner (blocking
// work: processes, kernels, whole-study I/O); the job manager owns the
// mailboxes, finds a job's mailbox for cancel and re-run, and restarts a
// mailbox that dies. What a restarted mailbox needs survives it: its queue
// is in the database, its running jobs in a map the manager keeps, and
// runners report to the manager, never to the mailbox that started them.
// The manager itself is restarted by its supervisor (actors/supervisor.hpp):
// the map of running jobs outlives it, and a restarted manager's mailboxes
// take their queues back from the database before they start anything.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "actors/supervisor.hpp"
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

/// The jobs of one stream that are running now, by id. Owned by the manager;
/// only the stream's current mailbox touches it.
using running_jobs = std::map<std::int64_t, running_job>;

/// The running jobs of every stream, by stream folder name.
using running_by_stream = std::map<std::string, std::shared_ptr<running_jobs>>;

struct stream_mailbox_state {
  std::string stream;
  std::deque<job_record> queue;
  std::shared_ptr<running_jobs> running;
  // After a restart nothing starts until the queue is back from the database.
  bool paused = false;
  // Successful run times (Welford's running mean and variance).
  std::uint64_t runs = 0;
  double mean_s = 0;
  double m2 = 0;
  job_store_actor job_store;
  router_actor router; // may be invalid (tests): results are then not routed
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  node_metrics* metrics = nullptr;
  job_manager_actor manager; // where runners report
  static inline const char* name = "stream-mailbox";
};

/// What a stream mailbox starts with.
struct mailbox_settings {
  std::string stream;
  job_store_actor job_store;
  router_actor router;
  job_manager_actor manager;
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  node_metrics* metrics = nullptr;
  stream_stats history;
  std::shared_ptr<running_jobs> running;
  /// Negative for a new mailbox; after a restart, the seconds to wait before
  /// taking the stream's queued jobs back from the database (back-off).
  double resume_after_s = -1;
};

stream_mailbox_actor::behavior_type
stream_mailbox(stream_mailbox_actor::stateful_pointer<stream_mailbox_state> self,
               mailbox_settings settings);

/// What the job manager starts with.
struct job_manager_settings {
  job_store_actor job_store;
  router_actor router; // may be invalid (tests): results are then not routed
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  node_metrics* metrics = nullptr;
  std::vector<stream_stats> history; // run times so far, per stream
  /// Outlives a restart of the manager, so that running jobs stay known.
  std::shared_ptr<running_by_stream> running = std::make_shared<running_by_stream>();
  /// Started again by its supervisor: every mailbox takes its queue from the
  /// database before it starts a job, and streams with queued jobs get one now.
  bool restarted = false;
  /// Where runners report: the manager's supervisor, which outlives it.
  /// Invalid: the manager itself.
  job_manager_actor reachable_as;
};

struct job_manager_state {
  std::map<std::string, stream_mailbox_actor> mailboxes;
  std::map<std::string, restart_backoff> restarts;
  job_manager_settings settings;
  std::map<std::string, stream_stats> history;
  static inline const char* name = "job-manager";
};

job_manager_actor::behavior_type
job_manager(job_manager_actor::stateful_pointer<job_manager_state> self,
            job_manager_settings settings);

/// What a stream's definition asks a job to do.
job_plan plan_for(const streams::stream_definition& stream);

} // namespace dcmstreams
