#pragma once
// Turning a completed study into a job, crash-safely, and finding on start
// what a stopped node left behind (DESIGN §6).
//
// A job is born in steps, each one repeatable:
//   1. a `creating` row in SQLite gives the job its id;
//   2. jobs/<id>/INPUT/ gets a hard link to every instance in incoming/;
//   3. jobs/<id>/info.json is written: from here on INPUT is complete;
//   4. each incoming file is renamed into store/<study>/ (if it is still the
//      file that was linked: same inode);
//   5. the row becomes `queued`.
// On start, a `creating` job without info.json is undone (its instances are
// still pending in incoming/), one with info.json is finished from step 4.

#include "pipeline/database.hpp"
#include "pipeline/error.hpp"
#include "pipeline/job.hpp"
#include "pipeline/store.hpp"

#include <string>
#include <tuple>
#include <vector>

namespace dcmstreams {

/// What groups instances into one study (DESIGN §2).
struct study_key {
  std::string called_ae;
  std::string calling_ae;
  std::string peer;
  std::string study_uid;

  bool operator<(const study_key& other) const {
    return std::tie(called_ae, calling_ae, peer, study_uid) <
           std::tie(other.called_ae, other.calling_ae, other.peer, other.study_uid);
  }
  bool operator==(const study_key& other) const {
    return std::tie(called_ae, calling_ae, peer, study_uid) ==
           std::tie(other.called_ae, other.calling_ae, other.peer, other.study_uid);
  }
  /// "study 1.2.3 from STORESCU@127.0.0.1 to SMOOTH", for logs.
  std::string describe() const;
};

/// One instance as it sits in incoming/.
struct arrived_instance {
  std::string sop_uid;
  std::string path;
  std::uint64_t bytes = 0;
};

struct completed_study {
  study_key key;
  std::string stream;
  std::vector<arrived_instance> instances;
  epoch_ms first_arrival = 0;
};

struct recovered_instance {
  study_key key;
  arrived_instance instance;
};

struct recovery_report {
  std::vector<job_record> resumed_jobs;    // finished from step 4, now queued
  std::vector<std::int64_t> undone_jobs;   // removed; their instances are pending again
  std::vector<recovered_instance> pending; // instances of studies still arriving
  std::size_t removed_partial_files = 0;   // interrupted receptions in incoming/.tmp
  std::vector<std::string> problems;       // files that could not be read, in words
};

class intake {
public:
  intake(store_layout layout, database& db, bool durable)
      : layout_(std::move(layout)), db_(db), durable_(durable) {}

  /// Creates the job folder for `study` and records the job as queued.
  /// Instances that vanished from incoming/ meanwhile are skipped (and named
  /// in the job's message); a study with none left is an error.
  result<job_record> create_job(const completed_study& study);

  /// Finishes or undoes interrupted job creations and lists the pending
  /// instances left in incoming/.
  recovery_report recover();

private:
  /// Steps 2 to 5 for a job that has its row.
  status fill_job_folder(job_record& job, const completed_study& study);
  /// Steps 4 and 5 for a job whose INPUT/ and info.json are complete.
  status move_to_store(job_record& job);

  store_layout layout_;
  database& db_;
  bool durable_;
};

} // namespace dcmstreams
