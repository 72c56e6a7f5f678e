#pragma once
// The job store: owns the database connection and the intake; runs detached
// because it does file I/O of whole studies and SQLite writes.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/intake.hpp"

#include <memory>

namespace dcmstreams {

struct job_store_state {
  std::shared_ptr<database> db;
  std::unique_ptr<store_layout> layout;
  bool durable = true;
  std::shared_ptr<journal> ingest_journal;
  std::unique_ptr<intake> jobs;
  event_hub* events = nullptr; // may be null (tests)
  static inline const char* name = "job-store";
};

job_store_actor::behavior_type job_store(job_store_actor::stateful_pointer<job_store_state> self,
                                         std::shared_ptr<database> db, store_layout layout,
                                         std::shared_ptr<journal> ingest_journal, bool durable,
                                         event_hub* events);

} // namespace dcmstreams
