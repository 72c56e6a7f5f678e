#pragma once
// A stream's mailbox: keeps the stream's jobs in order (FIFO) and runs
// `concurrency` of them at a time, each on a detached runner (blocking work:
// processes, kernels, whole-study I/O). Its job manager (actors/job_manager.hpp)
// spawns it, restarts it when it dies, and keeps what must survive it: the
// queue is in the database and the running jobs in a map the manager owns;
// runners report to the manager, never to the mailbox that started them.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "actors/slot_table.hpp"
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
  pseudonym_settings pseudonyms;
  node_metrics* metrics = nullptr;
  job_manager_actor manager;         // where runners report
  std::shared_ptr<slot_table> slots; // with a cluster: where jobs run; else none
  notifier_actor notifier;           // may be invalid: no notifications
  bool waiting_for_slot = false;     // every slot was taken; the slot table wakes it
  bool said_no_slots = false;        // logged that no slot exists at all
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
  pseudonym_settings pseudonyms; // of de-identification
  node_metrics* metrics = nullptr;
  stream_stats history;
  std::shared_ptr<running_jobs> running;
  /// With a cluster (cluster.port): the head's and the workers' slots.
  std::shared_ptr<slot_table> slots;
  /// Tells the stream's notify targets that a job ended.
  notifier_actor notifier;
  /// Negative for a new mailbox; after a restart, the seconds to wait before
  /// taking the stream's queued jobs back from the database (back-off).
  double resume_after_s = -1;
};

stream_mailbox_actor::behavior_type
stream_mailbox(stream_mailbox_actor::stateful_pointer<stream_mailbox_state> self,
               mailbox_settings settings);

/// What a stream's definition asks a job to do.
job_plan plan_for(const streams::stream_definition& stream);

} // namespace dcmstreams
