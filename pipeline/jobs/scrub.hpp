#pragma once
// Removing finished jobs and the stored instances no job needs any more: the
// pieces the scrubber (actors/scrubber.hpp) and DELETE /api/v1/jobs/{id}
// share. Blocking file system work: callers run off the CAF scheduler.

#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/store.hpp"

#include <cstdint>
#include <filesystem>

namespace dcmstreams {

/// Percent of the file system holding `path` in use, as df counts it
/// (blocks reserved for root count as not available); -1 if unknown.
double disk_used_pct(const std::filesystem::path& path);

struct removed_job {
  job_record job;
  std::uint64_t freed_bytes = 0; // files whose last link went with the job
};

/// Removes a finished job: its row first (a folder without a row is removed
/// again next time; a row without a folder would show a job whose files are
/// gone), then its folder, then the instances of its study in store/ that no
/// other job links. Fails for queued or running jobs (ec::conflict) and
/// unknown ids (ec::not_found).
result<removed_job> remove_finished_job(database& db, const store_layout& layout, std::int64_t id);

} // namespace dcmstreams
