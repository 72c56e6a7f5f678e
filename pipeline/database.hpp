#pragma once
// SQLite bookkeeping in <data>/dcmstreams.db (WAL). One connection per
// owner; the owning actor serializes access.

#include "pipeline/error.hpp"
#include "pipeline/job.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace dcmstreams {

class database {
public:
  /// Opens or creates the database and brings its schema up to date.
  static result<std::unique_ptr<database>> open(const std::filesystem::path& file);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  /// Inserts a job and returns its id.
  result<std::int64_t> insert_job(const job_record& job);
  /// Writes every field of an existing job.
  status update_job(const job_record& job);
  status delete_job(std::int64_t id);
  result<std::optional<job_record>> find_job(std::int64_t id);
  /// Jobs in `state`, oldest first.
  result<std::vector<job_record>> jobs_in_state(job_state state);

  /// Run-time statistics of successful jobs, per stream.
  struct duration_stats {
    std::string stream;
    std::int64_t runs = 0;
    double mean_s = 0;
    double std_s = 0;
  };
  result<std::vector<duration_stats>> durations_by_stream();

private:
  explicit database(sqlite3* handle) : db_(handle) {}
  status execute(const char* sql);
  failure sqlite_failure(const std::string& what) const;

  sqlite3* db_;
};

} // namespace dcmstreams
