#pragma once
// Removing finished jobs and the stored instances no job needs any more: the
// pieces the scrubber (actors/scrubber.hpp) and DELETE /api/v1/jobs/{id}
// share. Blocking file system work: callers run off the CAF scheduler.

#include "pipeline/database.hpp"
#include "pipeline/store.hpp"

#include <cstdint>
#include <filesystem>

namespace dcmstreams {

/// Percent of the file system holding `path` in use, as df counts it
/// (blocks reserved for root count as not available); -1 if unknown.
double disk_used_pct(const std::filesystem::path& path);

struct removed_job {
  job_record job;
  std::uint64_t freed_bytes = 0; // files whose last link went with the job folder
};

/// Removes a finished job: its row first (a folder without a row is removed
/// again next time; a row without a folder would show a job whose files are
/// gone), then its folder. Fails for queued or running jobs (ec::conflict)
/// and unknown ids (ec::not_found).
result<removed_job> remove_finished_job(database& db, const store_layout& layout, std::int64_t id);

/// Removes the instances of store/<study_uid>/ that no job folder links any
/// more. Safe while studies arrive: intake links an instance into its job
/// before it moves it into the store, so a needed store file never has a
/// single link. Returns the bytes freed.
std::uint64_t remove_unneeded_store_files(const store_layout& layout, const std::string& study_uid);

} // namespace dcmstreams
