#include "actors/sender.hpp"

#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/dicom/transcode.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/foundation/secret.hpp"
#include "pipeline/jobs/store.hpp"
#include "pipeline/jobs/views.hpp"
#include "pipeline/routing/send_policy.hpp"

#include <map>
#include <mutex>
#include <optional>
#include <random>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

constexpr const char* component = "routing";

using sender_pointer = sender_actor::stateful_pointer<sender_state>;

/// The files an attempt sends (de-identified or transcoded copies where the
/// destination asks for them), and what each copy stands for.
struct attempt_files {
  std::vector<fs::path> paths;
  std::map<std::string, std::string> original_of; // path sent -> path recorded
  std::string problem;                            // why a file was kept back
};

/// The files still to send: never sent, or refused last time. A file that is
/// gone (its job was deleted) is recorded as missing and never sent again.
/// For a destination that de-identifies, a file that cannot be is kept back
/// (recorded as refused), never sent as it is.
attempt_files files_to_send(database& db, const send_task& task,
                            const std::vector<send_file>& files, const fs::path& scratch,
                            const pseudonym_settings& settings) {
  attempt_files out;
  std::optional<pseudonymizer> pseudonyms;
  std::string key_problem;
  if (!task.deidentify.empty()) {
    if (auto key = load_secret(settings.key_file, false))
      pseudonyms.emplace(
          *key, deidentify_options{task.deidentify == "shift_dates", settings.keep_mapping});
    else
      key_problem = key.error().message;
  }
  for (auto& file : files) {
    if (is_stored(file.state) || file.state == file_send_state::missing)
      continue;
    if (!fs::exists(file.path)) {
      db.update_send_file(task.id,
                          {file.path, file_send_state::missing, 0, "the file no longer exists"});
      continue;
    }
    fs::path to_send = file.path;
    if (!task.deidentify.empty()) {
      create_directories(scratch, false);
      auto copy = scratch / ("deidentified-" + std::to_string(out.paths.size()) + ".dcm");
      auto problem = pseudonyms ? deidentify_file(file.path, copy, *pseudonyms)
                                : status{failure{ec::invalid_config, key_problem}};
      if (problem) {
        out.problem = "not sent, for it cannot be de-identified: " + problem->message;
        db.update_send_file(task.id, {file.path, file_send_state::refused, 0, out.problem});
        continue;
      }
      to_send = copy;
    }
    if (!task.transfer_syntax.empty()) {
      create_directories(scratch, false);
      auto coded = transcode(to_send, scratch / (std::to_string(out.paths.size()) + ".dcm"),
                             task.transfer_syntax);
      if (coded)
        to_send = *coded;
      else
        log::warning(component, coded.error().message + "; sending it as it is");
    }
    out.original_of[to_send.string()] = file.path;
    out.paths.push_back(to_send);
  }
  if (pseudonyms)
    if (auto problem = db.record_pseudonyms(pseudonyms->take_records(), task.job_id)) {
      // The copies could not be traced back: none of them goes.
      out.problem = "not sent, for its pseudonyms cannot be kept (deidentify.keep_mapping): " +
                    problem->message;
      for (auto& [sent, original] : out.original_of)
        db.update_send_file(task.id, {original, file_send_state::refused, 0, out.problem});
      out.paths.clear();
      out.original_of.clear();
    }
  return out;
}

/// One attempt of a send: its files go out, each outcome recorded before the
/// next file goes. Returns why the last unstored file was not stored.
std::string attempt(sender_pointer self, send_task& task, const attempt_files& files) {
  auto& st = self->state;
  std::string last_problem;
  std::mutex mutex; // guards last_problem, task's progress and last_progress
  std::chrono::steady_clock::time_point last_progress{}; // the first file shows at once
  send_options options;
  options.host = task.host;
  options.port = static_cast<std::uint16_t>(task.port);
  options.called_ae = task.called_ae;
  options.calling_ae = task.calling_ae;
  options.associations = static_cast<int>(task.associations);
  // A configured destination that speaks TLS; the send's own address must
  // still be the destination's, so a renamed or moved one is never sent
  // another's certificate.
  auto& destinations = st.settings.routing.destinations;
  if (auto it = destinations.find(task.destination);
      it != destinations.end() && it->second.host == task.host && it->second.port == task.port) {
    options.tls = it->second.tls;
    options.dicomweb = it->second.dicomweb;
  }
  // A destination that accepted and then went silent (hung, cut off) ends
  // the attempt after this long; the retry policy takes it from there.
  options.acse_timeout_s = options.dimse_timeout_s = st.settings.routing.sending.timeout_s;
  auto on_file = [&](const file_outcome& outcome) {
    send_file progress;
    auto original = files.original_of.find(outcome.path);
    progress.path = original != files.original_of.end() ? original->second : outcome.path;
    progress.status = outcome.dimse_status;
    progress.message = outcome.message;
    progress.state = file_state_of(outcome);
    if (progress.state == file_send_state::warning)
      log::warning(component,
                   progress.path + " stored at " + task.destination + " with " + outcome.message);
    // Recorded before the next file goes: a restart sends at most the
    // instances in flight again.
    st.db->update_send_file(task.id, progress);
    std::lock_guard<std::mutex> guard{mutex};
    if (!is_stored(progress.state)) {
      last_problem = outcome.message;
      return;
    }
    // The task's own count moves with the files, for the API and the UI's
    // live feed; at most five updates a second.
    ++task.files_sent;
    auto now = std::chrono::steady_clock::now();
    if (now - last_progress >= std::chrono::milliseconds(200)) {
      last_progress = now;
      save_send(*st.db, st.settings.routing, task);
    }
  };
  auto report = st.settings.client->send(files.paths, options, on_file);
  if (!report)
    last_problem = report.error().message;
  return last_problem;
}

void run_send(sender_pointer self, std::int64_t id) {
  auto& st = self->state;
  auto& db = *st.db;
  auto found = db.find_send(id);
  if (!found || !*found) {
    log::error(component, "send " + std::to_string(id) + " is not in the database");
    return;
  }
  auto task = **found;
  if (is_finished(task.state))
    return;
  auto files = db.send_files(id);
  if (!files) {
    log::error(component, files.error().message);
    return;
  }
  task.state = send_state::sending;
  ++task.attempts;
  task.files_sent = tally(*files).stored;
  save_send(db, st.settings.routing, task);

  auto scratch = st.settings.routing.data_dir / "sending" / std::to_string(id);
  auto to_send = files_to_send(db, task, *files, scratch, st.settings.routing.pseudonyms);
  std::string last_problem = to_send.problem;
  auto started = std::chrono::steady_clock::now();
  if (!to_send.paths.empty())
    if (auto problem = attempt(self, task, to_send); !problem.empty())
      last_problem = problem;
  if (auto* metrics = st.settings.metrics)
    metrics->send_attempt_duration.with({task.destination})
        .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  std::error_code ignored;
  fs::remove_all(scratch, ignored);

  // Counted from the database, which now holds every file's last outcome.
  files = db.send_files(id);
  auto counts = files ? tally(*files) : send_tally{};
  task.files_sent = counts.stored;
  task.files_failed = counts.refused + counts.missing;
  static thread_local std::mt19937 random{std::random_device{}()};
  double jitter = std::uniform_real_distribution<double>{0.8, 1.2}(random);
  auto verdict = conclude_attempt(task, counts, st.settings.routing.sending, last_problem, jitter);
  task.state = verdict.state;
  task.message = verdict.message;
  auto* metrics = st.settings.metrics;
  if (is_finished(task.state)) {
    task.finished = now_ms();
  } else {
    task.next_attempt = now_ms() + static_cast<epoch_ms>(verdict.retry_in_s * 1000);
    self->delayed_send(self, seconds(verdict.retry_in_s), send_atom::value, id);
    if (metrics)
      metrics->send_retries.with({task.destination}).increment();
    log::warning(component,
                 "send " + std::to_string(id) + " of job " + std::to_string(task.job_id) + " to " +
                     task.destination + ": attempt " + std::to_string(task.attempts) + " left " +
                     std::to_string(counts.pending + counts.refused) + " files unsent (" +
                     last_problem + "); trying again in " +
                     std::to_string(static_cast<int>(verdict.retry_in_s * 1000)) + " ms");
  }
  save_send(db, st.settings.routing, task);
  if (is_finished(task.state)) {
    log::info(component, "send " + std::to_string(id) + " of job " + std::to_string(task.job_id) +
                             " to " + task.destination + " " + to_string(task.state) + ": " +
                             task.message);
    if (metrics) {
      metrics->sends_total.with({task.destination, to_string(task.state)}).increment();
      metrics->send_queue_depth.with({task.destination}).decrement();
      metrics->send_duration.with({task.destination})
          .observe(static_cast<double>(task.finished - task.created) / 1000.0);
    }
  }
}

} // namespace

void publish_send(const routing_settings& settings, const send_task& task) {
  if (settings.events)
    settings.events->publish("send", send_view(task));
}

void save_send(database& db, const routing_settings& settings, const send_task& task) {
  if (auto problem = db.update_send(task))
    log::error(component, problem->message);
  publish_send(settings, task);
}

sender_actor::behavior_type sender(sender_pointer self, sender_settings settings) {
  self->state.settings = std::move(settings);
  auto db =
      database::open(store_layout{self->state.settings.routing.data_dir}.database_file(), false);
  if (db)
    self->state.db = std::move(*db);
  else
    log::error(component, db.error().message);
  return {
      [self](send_atom, std::int64_t id) {
        if (self->state.db)
          run_send(self, id);
      },
  };
}

} // namespace dcmstreams
