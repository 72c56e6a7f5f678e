#include "actors/remote_run.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/foundation/secret.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

constexpr const char* component = "cluster";
using clock = std::chrono::steady_clock;
// How long a worker may take to accept a job before it counts as lost.
constexpr std::chrono::seconds hand_over_timeout{10};
// How often the runner looks at cancel and at the worker's health while
// nothing arrives.
constexpr std::chrono::milliseconds poll{200};

std::uint64_t total_bytes(const std::vector<transfer_file>& files) {
  std::uint64_t bytes = 0;
  for (auto& file : files)
    bytes += file.size;
  return bytes;
}

/// Appends `from` to `to` (the worker's processing.log after the head's lines).
void append_file(const fs::path& from, const fs::path& to) {
  std::ifstream in{from, std::ios::binary};
  if (!in)
    return;
  std::ofstream out{to, std::ios::binary | std::ios::app};
  out << in.rdbuf();
}

/// Leftovers of earlier attempts (a head that stopped while it took results).
void remove_attempt_folders(const fs::path& dir) {
  std::error_code error;
  for (auto& entry : fs::directory_iterator(dir, error))
    if (entry.path().filename().string().rfind(".attempt-", 0) == 0)
      fs::remove_all(entry.path(), error);
}

/// Moves a complete set of results from the attempt's folder into the job's.
status adopt(const fs::path& staging, const fs::path& dir) {
  std::error_code error;
  fs::remove_all(dir / "OUTPUT", error);
  if (fs::exists(staging / "OUTPUT"))
    fs::rename(staging / "OUTPUT", dir / "OUTPUT", error);
  else
    fs::create_directories(dir / "OUTPUT", error);
  if (!error && fs::exists(staging / "proc.json"))
    fs::rename(staging / "proc.json", dir / "proc.json", error);
  if (error)
    return failure{ec::io_error,
                   dir.string() + ": cannot take the worker's results in: " + error.message()};
  append_file(staging / "processing.log", dir / "processing.log");
  fs::remove_all(staging, error);
  return std::nullopt;
}

} // namespace

std::string transfer_text(std::size_t files, std::uint64_t bytes, double seconds) {
  char text[160];
  double mb = static_cast<double>(bytes) / 1e6;
  std::snprintf(text, sizeof text, "%zu files, %.1f MB in %.2f s (%.0f MB/s)", files, mb, seconds,
                seconds > 0 ? mb / seconds : 0.0);
  return text;
}

job_outcome run_on_worker(caf::blocking_actor* self, const placement& slot,
                          const store_layout& layout, job_record& job, const job_plan& plan,
                          cancel_token& cancel, const slot_table& slots) {
  auto start = clock::now();
  auto dir = layout.job_dir(job.id);
  auto log_file = dir / "processing.log";
  auto attempt = std::to_string(slot.attempt);
  auto job_name = "job " + std::to_string(job.id);
  job.worker = slot.worker;
  job_outcome outcome;
  std::error_code error;
  fs::remove_all(dir / "OUTPUT", error);
  fs::remove(dir / "proc.json", error);
  remove_attempt_folders(dir);
  fs::create_directories(dir / "OUTPUT", error);
  append_job_log(log_file,
                 job_name + " runs on worker " + slot.worker + " (attempt " + attempt + ")");

  auto inputs = list_transfer_files(dir / "INPUT");
  if (!inputs) {
    outcome.message = inputs.error().message;
    return outcome;
  }
  chunk_reader input_reader{dir / "INPUT", *inputs};
  auto input_bytes = total_bytes(*inputs);
  remote_job handed{job, plan, slot.attempt, *inputs, {}, {}};
  handed.plan.pseudonyms = {};
  auto staging = dir / (".attempt-" + attempt);
  if (slots.shared_data()) {
    // The worker proves it sees this folder by reading the token back.
    handed.shared_token = random_hex(16);
    auto problem = create_directories(staging, false);
    if (!problem)
      problem = write_file_atomically(staging / "token", handed.shared_token, false);
    if (problem) {
      outcome.message = problem->message;
      return outcome;
    }
    handed.shared_dir = fs::absolute(staging).string();
  }

  std::string lost_why; // set once the worker counts as lost
  caf::actor run;
  self->request(slot.handle, hand_over_timeout, run_atom::value, handed,
                caf::actor_cast<caf::actor>(self))
      .receive([&](caf::actor& handle) { run = handle; },
               [&](caf::error& e) { lost_why = "it did not take the job: " + describe(e); });
  if (run)
    self->monitor(run);

  bool cancel_sent = false;
  auto look_around = [&] {
    if (!lost_why.empty())
      return;
    if (!slots.alive(slot))
      lost_why = "it stopped answering or its connection closed";
    else if (cancel.cancelled() && !cancel_sent && run) {
      self->send(run, cancel_atom::value);
      cancel_sent = true;
    }
  };
  auto on_down = [&](caf::down_msg& down) {
    if (run && down.source == run.address())
      lost_why = "its run of the job stopped (" + describe(down.reason) + ")";
  };

  // Phase 1: the worker asks for its inputs, then runs the job.
  bool finished = false, shared = false;
  std::vector<transfer_file> results;
  std::uint64_t served = 0;
  clock::time_point inputs_done;
  while (!finished && lost_why.empty()) {
    look_around();
    if (!lost_why.empty())
      break;
    self->receive(
        [&](read_atom, std::uint32_t file, std::uint64_t offset) {
          auto data = input_reader.read(file, offset);
          if (data)
            served += data->size();
          if (data && served == input_bytes)
            inputs_done = clock::now();
          self->send(run, chunk_atom::value, file, offset,
                     data ? std::move(*data) : std::vector<char>{},
                     data ? std::string{} : data.error().message);
        },
        [&](finished_atom, job_outcome& result, std::vector<transfer_file>& files,
            bool in_shared_folder) {
          outcome = std::move(result);
          results = std::move(files);
          shared = in_shared_folder;
          finished = true;
        },
        on_down, caf::after(poll) >> [] {});
  }

  // Phase 2: the results come back into this attempt's own folder (or are
  // there already, written by the worker into the shared data folder).
  auto results_start = clock::now();
  chunk_writer writer{staging, results};
  std::string problem;
  auto results_dir = shared ? store_layout{staging / "run"}.job_dir(job.id) : staging;
  if (finished && lost_why.empty() && !shared) {
    if (auto opened = writer.open())
      problem = "the worker's results cannot be taken: " + opened->message;
    while (problem.empty() && lost_why.empty() && !writer.complete()) {
      while (auto next = writer.next())
        self->send(run, read_atom::value, next->file, next->offset);
      self->receive(
          [&](chunk_atom, std::uint32_t file, std::uint64_t offset, std::vector<char>& data,
              std::string& refused) {
            if (!refused.empty())
              problem = "the worker cannot send its results: " + refused;
            else if (auto written = writer.accept(file, offset, data))
              problem = "the worker's results cannot be taken: " + written->message;
          },
          on_down, caf::after(poll) >> [] {});
      look_around();
    }
  }

  if (!lost_why.empty()) {
    if (run)
      self->send(run, cancel_atom::value); // in case it only lost touch for a while
    fs::remove_all(staging, error);
    job_outcome given_up;
    given_up.seconds = seconds_since(start);
    auto where =
        "worker " + slot.worker + " was lost during attempt " + attempt + " (" + lost_why + ")";
    if (cancel.cancelled()) {
      given_up.state = job_state::cancelled;
      given_up.message = "cancelled; " + where;
    } else if (++job.lost_runs <= 1) {
      given_up.state = job_state::queued;
      given_up.message = where + "; the job runs again";
    } else {
      given_up.state = job_state::failed;
      given_up.message = where + ", the job's second run lost with its worker; re-run it once "
                                 "the workers are healthy";
    }
    append_job_log(log_file, given_up.message);
    log::warning(component, job_name + ": " + given_up.message);
    return given_up;
  }

  if (problem.empty())
    if (auto adopted = adopt(results_dir, dir))
      problem = adopted->message;
  fs::remove_all(staging, error);
  self->send(run, done_atom::value);
  if (!problem.empty()) {
    fs::remove_all(staging, error);
    outcome.state = job_state::failed;
    outcome.message = problem;
  }
  auto input_s = inputs_done.time_since_epoch().count() > 0
                     ? std::chrono::duration<double>(inputs_done - start).count()
                     : 0.0;
  if (shared)
    append_job_log(log_file, "on worker " + slot.worker +
                                 ": inputs and results through the shared data folder");
  else
    append_job_log(log_file, "on worker " + slot.worker + ": inputs " +
                                 transfer_text(inputs->size(), input_bytes, input_s) +
                                 "; results " +
                                 transfer_text(results.size(), writer.bytes_received(),
                                               seconds_since(results_start)));
  outcome.seconds = seconds_since(start);
  return outcome;
}

} // namespace dcmstreams
