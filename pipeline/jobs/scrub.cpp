#include "pipeline/jobs/scrub.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <sys/stat.h>

namespace dcmstreams {

namespace fs = std::filesystem;

double disk_used_pct(const fs::path& path) {
  auto space = disk_space_of(path);
  return space ? space->used_pct : -1;
}

namespace {

/// Bytes of the files under `dir` that have no other link.
std::uint64_t bytes_only_here(const fs::path& dir) {
  std::uint64_t bytes = 0;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    struct stat info {};
    if (::lstat(it->path().c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_nlink == 1)
      bytes += static_cast<std::uint64_t>(info.st_size);
  }
  return bytes;
}

/// Removes the instances of store/<study_uid>/ that no job folder links any
/// more. Safe while studies arrive: intake links an instance into its job
/// before it moves it into the store, so a needed store file never has a
/// single link. Returns the bytes freed.
std::uint64_t remove_unneeded_store_files(const store_layout& layout,
                                          const std::string& study_uid) {
  if (!valid_uid(study_uid))
    return 0;
  auto dir = layout.store_dir() / study_uid;
  std::uint64_t freed = 0;
  std::error_code error;
  for (auto it = fs::directory_iterator(dir, error); !error && it != fs::directory_iterator();
       it.increment(error)) {
    struct stat info {};
    if (::lstat(it->path().c_str(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_nlink != 1)
      continue;
    std::error_code ignored;
    if (fs::remove(it->path(), ignored))
      freed += static_cast<std::uint64_t>(info.st_size);
  }
  std::error_code ignored;
  fs::remove(dir, ignored); // only if empty
  return freed;
}

} // namespace

result<removed_job> remove_finished_job(database& db, const store_layout& layout, std::int64_t id) {
  auto found = db.find_job(id);
  if (!found)
    return found.error();
  if (!*found)
    return failure{ec::not_found, "no job " + std::to_string(id)};
  removed_job removed{**found, 0};
  auto state = removed.job.state;
  if (state == job_state::queued || state == job_state::running)
    return failure{ec::conflict,
                   "job " + std::to_string(id) + " is " + to_string(state) + "; cancel it first"};
  if (auto problem = db.delete_job(id))
    return *problem;
  auto dir = layout.job_dir(id);
  removed.freed_bytes = bytes_only_here(dir);
  std::error_code error;
  fs::remove_all(dir, error);
  if (error)
    log::warning("jobs", "job " + std::to_string(id) + " is deleted but its folder " +
                             dir.string() + " could not be removed: " + error.message());
  removed.freed_bytes += remove_unneeded_store_files(layout, removed.job.study_uid);
  return removed;
}

} // namespace dcmstreams
