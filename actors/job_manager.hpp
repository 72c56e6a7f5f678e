#pragma once
// Running jobs: one mailbox actor per stream (actors/stream_mailbox.hpp)
// keeps that stream's FIFO and runs `concurrency` jobs at a time; the job
// manager owns the mailboxes, finds a job's mailbox for cancel and re-run,
// and restarts a mailbox that dies. What a restarted mailbox needs survives it: its queue
// is in the database, its running jobs in a map the manager keeps, and
// runners report to the manager, never to the mailbox that started them.
// The manager itself is restarted by its supervisor (actors/supervisor.hpp):
// the map of running jobs outlives it, and a restarted manager's mailboxes
// take their queues back from the database before they start anything.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "actors/stream_mailbox.hpp"
#include "actors/supervisor.hpp"
#include "streams/registry.hpp"

#include <deque>
#include <filesystem>
#include <map>
#include <memory>

namespace dcmstreams {

/// The running jobs of every stream, by stream folder name.
using running_by_stream = std::map<std::string, std::shared_ptr<running_jobs>>;

/// What the job manager starts with.
struct job_manager_settings {
  job_store_actor job_store;
  router_actor router; // may be invalid (tests): results are then not routed
  std::shared_ptr<streams::shared_registry> registry;
  std::filesystem::path data_dir;
  pseudonym_settings pseudonyms;     // node_config::pseudonyms()
  std::shared_ptr<slot_table> slots; // with a cluster: the head's and the workers' slots
  notifier_actor notifier;           // may be invalid: no notifications
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

} // namespace dcmstreams
