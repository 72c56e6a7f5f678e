#include "actors/scrubber.hpp"

#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/scrub.hpp"

#include <limits>

namespace dcmstreams {

namespace {

constexpr const char* component = "scrubber";
// Jobs looked at per database query while the disk is above the mark.
constexpr std::int64_t batch = 20;

using self_pointer = scrubber_actor::stateful_pointer<scrubber_state>;

std::string percent(double value) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", value);
  return text;
}

/// Deletes one job (or says it would); false when it could not.
bool scrub_job(self_pointer self, const job_record& job, const char* reason, scrub_report& report) {
  auto& st = self->state;
  auto what = "job " + std::to_string(job.id) + " of stream " + job.stream + " (finished " +
              iso8601(job.finished ? job.finished : job.completed) + ")";
  if (st.settings.storage.scrub_dry_run) {
    log::info(component, "dry run: would delete " + what + " (" + reason + ")");
    report.jobs.push_back(job.id);
    return true;
  }
  auto removed = remove_finished_job(*st.db, *st.layout, job.id);
  if (!removed) {
    log::warning(component, "cannot delete " + what + ": " + removed.error().message);
    return false;
  }
  auto freed = removed->freed_bytes;
  report.jobs.push_back(job.id);
  report.freed_bytes += freed;
  log::info(component, "deleted " + what + " (" + reason + "), " + std::to_string(freed / 1024) +
                           " KiB freed");
  if (st.settings.metrics) {
    st.settings.metrics->scrubbed_jobs.with({reason}).increment();
    st.settings.metrics->scrubbed_bytes.with({reason}).increment(static_cast<double>(freed));
  }
  if (st.settings.events)
    st.settings.events->publish("deleted", {{"id", job.id}});
  return true;
}

scrub_report scrub(self_pointer self) {
  auto& st = self->state;
  scrub_report report;
  report.dry_run = st.settings.storage.scrub_dry_run;
  report.used_pct_before = st.used_pct();
  if (st.settings.storage.retention_days > 0) {
    auto cutoff = now_ms() - static_cast<epoch_ms>(st.settings.storage.retention_days * 86400e3);
    if (auto old = st.db->scrub_candidates(cutoff, 1000))
      for (auto& job : *old)
        scrub_job(self, job, "age", report);
    else
      log::error(component, old.error().message);
  }
  auto used = st.used_pct();
  if (used > st.settings.storage.scrub_high_pct) {
    log::warning(component, "the data disk is " + percent(used) + " full, above " +
                                percent(st.settings.storage.scrub_high_pct) +
                                ": deleting the oldest finished jobs until below " +
                                percent(st.settings.storage.scrub_low_pct));
    std::int64_t skip = 0; // dry runs delete nothing, so they page through
    while (used >= st.settings.storage.scrub_low_pct) {
      auto candidates = st.db->scrub_candidates(std::numeric_limits<epoch_ms>::max(), batch + skip);
      if (!candidates) {
        log::error(component, candidates.error().message);
        break;
      }
      std::size_t done = 0;
      for (auto i = static_cast<std::size_t>(skip); i < candidates->size(); ++i) {
        done += scrub_job(self, (*candidates)[i], "disk", report);
        if (!st.settings.storage.scrub_dry_run &&
            (used = st.used_pct()) < st.settings.storage.scrub_low_pct)
          break;
      }
      if (st.settings.storage.scrub_dry_run)
        skip = static_cast<std::int64_t>(candidates->size());
      if (done == 0 || st.settings.storage.scrub_dry_run) {
        if (done == 0 && !st.settings.storage.scrub_dry_run)
          log::warning(component, "the data disk is still " + percent(used) +
                                      " full and no finished job is left to delete: pending "
                                      "studies, queued jobs and unsent results are kept");
        break;
      }
    }
  }
  report.used_pct_after = st.used_pct();
  return report;
}

} // namespace

scrubber_actor::behavior_type scrubber(self_pointer self, scrubber_settings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.layout = std::make_unique<store_layout>(st.settings.data_dir);
  st.used_pct = [data_dir = st.settings.data_dir] { return disk_used_pct(data_dir); };
  if (auto db = database::open(st.layout->database_file(), false))
    st.db = std::move(*db);
  else
    log::error(component, db.error().message + "; the data disk is not cleaned up");
  self->send(self, tick_atom::value);
  return {
      [self](tick_atom) {
        if (self->state.db)
          scrub(self);
        self->delayed_send(self, seconds(self->state.settings.storage.scrub_interval_s),
                           tick_atom::value);
      },
      [self](scrub_atom) -> caf::result<scrub_report> {
        if (!self->state.db)
          return make_error(ec::database_error, "the scrubber has no database");
        return scrub(self);
      },
  };
}

} // namespace dcmstreams
