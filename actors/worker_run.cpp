#include "actors/worker_run.hpp"

#include "actors/remote_run.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/store.hpp"

#include <chrono>
#include <memory>
#include <thread>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

constexpr const char* component = "worker";
using clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds poll{200};
// Results wait this long for the head to take them; then they go.
constexpr std::chrono::minutes results_kept{10};

/// What goes back to the head: OUTPUT/, the log and the outcome, never INPUT/.
std::vector<transfer_file> results_of(const fs::path& dir) {
  std::vector<transfer_file> results;
  auto files = list_transfer_files(dir);
  if (!files)
    return results;
  for (auto& file : *files)
    if (file.path.rfind("OUTPUT/", 0) == 0 || file.path == "processing.log" ||
        file.path == "proc.json")
      results.push_back(file);
  return results;
}

} // namespace

void worker_run(caf::blocking_actor* self, worker_run_settings settings) {
  auto& handed = settings.handed;
  auto& job = handed.job;
  auto runner = settings.runner;
  auto name = "job " + std::to_string(job.id) + " (attempt " + std::to_string(handed.attempt) + ")";
  // With a shared data folder the run happens in the head's own attempt
  // folder, once the token the head left there proves it is the same.
  bool shared = false;
  if (!handed.shared_dir.empty()) {
    auto token = read_text_file(fs::path{handed.shared_dir} / "token");
    shared = token && *token == handed.shared_token;
    if (!shared)
      log::warning(component, name + ": the head's data folder (" + handed.shared_dir +
                                  ") is not shared with this worker (" +
                                  (token ? "another folder at that path" : token.error().message) +
                                  "); inputs and results move in chunks");
  }
  // Numbered by this worker: the head's attempt numbers start again when
  // it restarts, while a run of its earlier life may still be going here.
  auto root = shared ? fs::path{handed.shared_dir} / "run"
                     : settings.work_dir / ("run-" + std::to_string(settings.run) + "-job-" +
                                            std::to_string(job.id));
  std::error_code error;
  fs::remove_all(root, error);
  store_layout layout{root};
  auto dir = layout.job_dir(job.id);
  self->monitor(runner);
  log::info(component, "runs " + name + " of stream " + job.stream +
                           " for the head: " + std::to_string(handed.inputs.size()) +
                           " input files" + (shared ? " in the shared data folder" : ""));

  bool runner_gone = false, cancelled = false;
  auto on_down = [&](caf::down_msg& down) {
    if (down.source == runner.address())
      runner_gone = true;
  };

  // Inputs, asked for chunk by chunk (or seen in the shared folder).
  auto start = clock::now();
  job_outcome outcome;
  chunk_writer inputs{dir / "INPUT", shared ? std::vector<transfer_file>{} : handed.inputs};
  std::string problem;
  if (shared) {
    fs::create_directories(dir, error);
    fs::create_directory_symlink(fs::path{handed.shared_dir}.parent_path() / "INPUT", dir / "INPUT",
                                 error);
    if (error)
      problem =
          dir.string() + ": cannot prepare the run in the shared data folder: " + error.message();
  } else if (auto opened = inputs.open()) {
    problem = opened->message;
  }
  while (problem.empty() && !runner_gone && !cancelled && !inputs.complete()) {
    while (auto next = inputs.next())
      self->send(runner, read_atom::value, next->file, next->offset);
    self->receive(
        [&](chunk_atom, std::uint32_t file, std::uint64_t offset, std::vector<char>& data,
            std::string& refused) {
          if (!refused.empty())
            problem = "the head cannot send the job's inputs: " + refused;
          else if (auto written = inputs.accept(file, offset, data))
            problem = "the job's inputs cannot be written here: " + written->message;
        },
        [&](cancel_atom) { cancelled = true; }, on_down, caf::after(poll) >> [] {});
  }
  auto log_file = dir / "processing.log";
  if (!runner_gone && !shared)
    append_job_log(log_file,
                   "worker: inputs " + transfer_text(handed.inputs.size(), inputs.bytes_received(),
                                                     seconds_since(start)));

  // The run, on a thread of its own so that a cancel or the head's going
  // away reaches it.
  if (problem.empty() && !runner_gone && !cancelled) {
    auto token = std::make_shared<cancel_token>();
    auto result = std::make_shared<job_outcome>();
    auto me = caf::actor_cast<caf::actor>(self);
    std::thread running{[layout, job, plan = handed.plan, token, result, me] {
      *result = run_job(layout, job, plan, *token);
      caf::anon_send(me, finished_atom::value);
    }};
    bool ran = false;
    while (!ran)
      self->receive([&](finished_atom) { ran = true; },
                    [&](cancel_atom) {
                      cancelled = true;
                      token->cancel();
                    },
                    [&](caf::down_msg& down) {
                      on_down(down);
                      if (runner_gone)
                        token->cancel();
                    });
    running.join();
    outcome = *result;
  } else if (!problem.empty()) {
    outcome.message = problem;
    append_job_log(log_file, problem);
  } else if (cancelled) {
    outcome.state = job_state::cancelled;
    outcome.message = "cancelled before it ran";
  }

  if (runner_gone) {
    log::warning(component, "the head gave " + name +
                                " up (it counted this worker as lost, stopped, or the "
                                "connection broke); its result is thrown away");
    fs::remove_all(root, error);
    return;
  }

  // Results, sent chunk by chunk as the runner asks for them.
  auto results = shared ? std::vector<transfer_file>{} : results_of(dir);
  self->send(runner, finished_atom::value, outcome, results, shared);
  log::info(component,
            name + " " + to_string(outcome.state) + " in " + log::seconds_text(outcome.seconds) +
                "; " +
                (shared ? std::string{"results in the shared data folder"}
                        : std::to_string(results.size()) + " result files for the head"));
  chunk_reader reader{dir, results};
  bool taken = false;
  auto idle_since = clock::now();
  while (!taken && !runner_gone && clock::now() - idle_since < results_kept)
    self->receive(
        [&](read_atom, std::uint32_t file, std::uint64_t offset) {
          idle_since = clock::now();
          auto data = reader.read(file, offset);
          self->send(runner, chunk_atom::value, file, offset,
                     data ? std::move(*data) : std::vector<char>{},
                     data ? std::string{} : data.error().message);
        },
        [&](done_atom) { taken = true; }, [&](cancel_atom) {}, on_down, caf::after(poll) >> [] {});
  if (runner_gone)
    log::warning(component, "the head gave " + name +
                                " up while its results waited (it counted this worker as lost, "
                                "stopped, or the connection broke); its result is thrown away");
  else if (!taken)
    log::warning(component, "the head did not take the results of " + name + " in " +
                                std::to_string(results_kept.count()) +
                                " minutes; they are thrown away");
  // Results the head took from the shared folder are its own now.
  if (!(shared && taken))
    fs::remove_all(root, error);
}

} // namespace dcmstreams
