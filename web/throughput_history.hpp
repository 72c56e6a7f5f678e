#pragma once
// Counts of the node's counters per `interval`, for the last hour: what the
// UI's throughput chart draws. Kept in the node's SQLite database as well
// (table throughput), so a restart keeps the history (the counters
// themselves start again at zero).

#include "actors/node_metrics.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/job.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

namespace dcmstreams::web {

class throughput_history {
public:
  static constexpr std::chrono::seconds interval{10};
  static constexpr std::size_t kept = 360;

  /// Samples `counters` every interval on a thread of its own (none when
  /// null) and keeps the samples in the database at `database_file` (opened
  /// and brought up to date by the node before). `old_file`: where nodes
  /// before schema 6 kept them as JSON; taken over once, then removed.
  throughput_history(node_metrics* counters, const std::filesystem::path& database_file,
                     const std::filesystem::path& old_file);
  ~throughput_history();
  throughput_history(const throughput_history&) = delete;
  throughput_history& operator=(const throughput_history&) = delete;

  void stop();

  /// {"interval_s":10,"samples":[{"at":...,"at_ms":...,"instances":n,"jobs":n,"sends":n}]},
  /// each the count within the interval before `at`.
  json::value json();

private:
  using sample = throughput_sample;

  static json::value json_of(const std::deque<sample>& samples);
  sample totals_now() const;
  void take_over(const std::filesystem::path& old_file);
  void load();
  void run();

  node_metrics* counters_;
  std::unique_ptr<database> db_; // null when it cannot be opened: memory only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<sample> samples_;
  bool stopping_ = false;
  std::thread sampler_;
};

} // namespace dcmstreams::web
