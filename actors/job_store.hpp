#pragma once
// The job store: owns the database connection and the intake; runs detached
// because it does file I/O of whole studies and SQLite writes.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/intake.hpp"

#include <memory>

namespace dcmstreams {

/// What the job store starts with.
struct job_store_settings {
  std::shared_ptr<database> db;
  std::filesystem::path data_dir;
  std::shared_ptr<journal> ingest_journal;
  /// Sync what a new job's creation writes (storage.sync is not "none").
  bool durable = true;
  event_hub* events = nullptr; // may be null (tests)
};

/// A completed study waiting for the next commit, and who waits for its jobs.
struct study_to_commit {
  completed_study study;
  caf::typed_response_promise<std::vector<job_record>> promise;
};

struct job_store_state {
  job_store_settings settings;
  std::unique_ptr<store_layout> layout;
  std::unique_ptr<intake> jobs;
  // Studies taken from the mailbox since the last commit: the studies that
  // complete while one commit runs share the next (group commit), so that
  // job creation keeps up with ingest however many studies complete at once.
  std::vector<study_to_commit> to_commit;
  job_store_state() = default;
  job_store_state(const job_store_state&) = delete;
  job_store_state& operator=(const job_store_state&) = delete;
  /// Answers the studies still waiting for a commit with an error, so that
  /// their assembler tries them again with the restarted job store.
  ~job_store_state();
  static inline const char* name = "job-store";
};

job_store_actor::behavior_type job_store(job_store_actor::stateful_pointer<job_store_state> self,
                                         job_store_settings settings);

} // namespace dcmstreams
