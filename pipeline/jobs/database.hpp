#pragma once
// SQLite bookkeeping in <data>/dcmstreams.db (WAL). One connection per
// owner; the owning actor serializes access.

#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/jobs/job.hpp"
#include "pipeline/jobs/send.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace dcmstreams {

/// Which jobs a listing shows; empty fields do not filter.
struct job_filter {
  std::string stream;
  std::string state;
  std::string sender; // calling AE title or peer address
  std::string text;   // found in the study UID, stream, AE titles, peer, message, patient name or
                      // ID, accession number, study description, modalities, or the id
  epoch_ms from = 0;  // received at or after
  epoch_ms to = 0;    // received before
  std::int64_t limit = 50;
  std::int64_t offset = 0;
  bool search_patient = true; // text also matches patient name, ID and accession number
};

/// What the node did within one interval of the throughput chart.
struct throughput_sample {
  epoch_ms at = 0; // the end of the interval
  double instances = 0;
  double jobs = 0;
  double sends = 0;
};

struct job_page {
  std::vector<job_record> jobs; // newest first
  std::int64_t total = 0;       // matching jobs, all pages
};

class database {
public:
  /// Opens or creates the database and brings its schema up to date. With
  /// `full_sync`, each commit is synced (jobs); without, a commit survives a
  /// crash of the node but maybe not a power loss (per-file send progress).
  static result<std::unique_ptr<database>> open(const std::filesystem::path& file,
                                                bool full_sync = true);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  /// Inserts a job and returns its id.
  result<std::int64_t> insert_job(const job_record& job);
  /// Writes every field of an existing job.
  status update_job(const job_record& job);
  /// Writes several jobs in one transaction (one sync): all or none.
  status update_jobs(const std::vector<job_record>& jobs);
  status delete_job(std::int64_t id);
  result<std::optional<job_record>> find_job(std::int64_t id);
  /// Jobs in `state`, oldest first.
  result<std::vector<job_record>> jobs_in_state(job_state state);

  /// Records that a job's results were routed (0: route them again after a re-run).
  status mark_routed(std::int64_t id, epoch_ms when);
  /// A page of jobs matching `filter`, newest first, with the total count.
  result<job_page> list_jobs(const job_filter& filter);
  /// Finished jobs the scrubber may delete, finished before `finished_before`,
  /// oldest first: routed, and every send of its results done.
  result<std::vector<job_record>> scrub_candidates(epoch_ms finished_before, std::int64_t limit);
  /// Sends of one job, oldest first.
  result<std::vector<send_task>> sends_of_job(std::int64_t job_id);
  /// Finished jobs (success or failed) whose results were not yet routed.
  result<std::vector<job_record>> jobs_to_route();

  /// Run-time statistics of successful jobs, per stream.
  struct duration_stats {
    std::string stream;
    std::int64_t runs = 0;
    double mean_s = 0;
    double std_s = 0;
  };
  result<std::vector<duration_stats>> durations_by_stream();

  /// Records a send task and its files in one transaction; returns its id.
  result<std::int64_t> insert_send(send_task task, const std::vector<std::string>& files);
  status update_send(const send_task& task);
  result<std::optional<send_task>> find_send(std::int64_t id);
  /// Sends not done or failed, oldest first: what a restart resumes.
  result<std::vector<send_task>> unfinished_sends();
  /// The newest sends first, at most `limit` (for listings).
  result<std::vector<send_task>> recent_sends(std::int64_t limit);
  result<std::vector<send_file>> send_files(std::int64_t send_id);
  status update_send_file(std::int64_t send_id, const send_file& file);

  /// Keeps what pseudonyms stand for (deidentify.keep_mapping); the first
  /// job that gave a pseudonym stays its job.
  status record_pseudonyms(const std::vector<pseudonym_record>& records, std::int64_t job_id);
  /// What `pseudonym` stands for, with the job that first gave it.
  struct kept_pseudonym {
    pseudonym_record record;
    std::int64_t job_id = 0;
    epoch_ms created = 0;
  };
  result<std::vector<kept_pseudonym>> find_pseudonym(const std::string& pseudonym);

  /// Keeps one interval of the throughput chart and forgets those before
  /// `forget_before`.
  status record_throughput(const throughput_sample& sample, epoch_ms forget_before);
  /// The kept intervals from `since` on, oldest first.
  result<std::vector<throughput_sample>> throughput_since(epoch_ms since);

  /// Writes a heartbeat row: fails when the disk or the database refuses writes.
  status writable();

private:
  explicit database(sqlite3* handle) : db_(handle) {}
  status execute(const char* sql);
  /// Runs `body` in one write transaction: committed if it succeeds, else
  /// rolled back.
  status in_transaction(const std::function<status()>& body);
  failure sqlite_failure(const std::string& what) const;

  sqlite3* db_;
};

} // namespace dcmstreams
