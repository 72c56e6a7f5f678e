#pragma once
// The job model (DESIGN §5, §7): one job per completed (study, stream), or per
// series with `group_by: series`.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dcmstreams {

/// Milliseconds since the Unix epoch; 0 means "not yet".
using epoch_ms = std::int64_t;

epoch_ms now_ms();
/// Seconds from `start` until now on the steady clock, for run and transfer times.
double seconds_since(std::chrono::steady_clock::time_point start);
/// "2026-11-28T07:49:13.123Z", or "" for 0.
std::string iso8601(epoch_ms time);

enum class job_state {
  creating, // folder being written; recovered or removed on start
  queued,   // waiting in its stream's mailbox
  running,
  success,
  failed,
  cancelled,
  skipped, // nothing in the study matched the stream's `accept` filters
};

const char* to_string(job_state state);
std::optional<job_state> parse_job_state(std::string_view text);
/// Whether the job has ended (success, failed, cancelled or skipped).
bool is_finished(job_state state);

struct job_record {
  std::int64_t id = 0;
  std::string stream; // the stream folder name
  job_state state = job_state::creating;
  std::string called_ae;
  std::string calling_ae;
  std::string peer; // the calling peer's address
  std::string study_uid;
  std::string series_uid; // set for `group_by: series` jobs
  std::int64_t instances = 0;
  std::int64_t bytes = 0;
  epoch_ms received = 0;  // first instance arrived
  epoch_ms completed = 0; // the study was complete and the job queued
  epoch_ms started = 0;
  epoch_ms finished = 0;
  epoch_ms routed = 0;        // its results were handed to the routing rules
  std::string message;        // outcome in words
  std::string worker;         // the worker it ran on last; empty: the node itself (docs/cluster.md)
  std::int64_t lost_runs = 0; // runs that ended with their worker lost (it runs again once)
  // How the job came to be, where more than a study arriving (a late rerun
  // of an earlier job, instances replaced meanwhile); kept when it runs.
  std::string origin;
  // Who and what, taken at intake from the instances (for lists and search).
  std::string patient_name;
  std::string patient_id;
  std::string accession_number;
  std::string study_date; // YYYYMMDD as in the data
  std::string study_description;
  std::string modalities; // "CT, PT"
  std::int64_t series = 0;
};

} // namespace dcmstreams
