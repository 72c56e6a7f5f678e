#include "pipeline/execution/job_runner.hpp"

#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/foundation/secret.hpp"
#include "pipeline/imaging/derived_series.hpp"
#include "pipeline/jobs/database.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

using clock = std::chrono::steady_clock;

// Lines the node itself writes into processing.log, between the program's.
class job_log {
public:
  explicit job_log(const fs::path& file) : out_(file, std::ios::app) {}
  void line(const std::string& text) {
    out_ << iso8601(now_ms()) << " dcmstreams: " << text << '\n';
    out_.flush();
  }

private:
  std::ofstream out_;
};

std::string proc_json(const std::string& success, const std::string& message) {
  json::value proc = json::value::array({{{"success", success}, {"message", message}}});
  return json::dump(proc) + "\n";
}

std::vector<fs::path> input_files(const fs::path& input) {
  std::vector<fs::path> files;
  std::error_code error;
  for (auto& entry : fs::directory_iterator(input, error))
    if (entry.is_regular_file())
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

job_outcome run_program(const fs::path& dir, const job_record& job, const job_plan& plan,
                        cancel_token& cancel, job_log& log) {
  command_spec spec;
  spec.argv = plan.command;
  spec.argv.push_back((dir / "INPUT").string());
  spec.argv.push_back((dir / "OUTPUT").string());
  spec.working_dir = dir;
  spec.log_file = dir / "processing.log";
  spec.timeout_s = plan.timeout_s;
  spec.log_limit_bytes = plan.log_limit_bytes;
  spec.environment = {{"DCMSTREAMS_JOB_ID", std::to_string(job.id)},
                      {"DCMSTREAMS_STREAM", job.stream},
                      {"DCMSTREAMS_CALLED_AE", job.called_ae},
                      {"DCMSTREAMS_CALLING_AE", job.calling_ae},
                      {"DCMSTREAMS_PEER", job.peer},
                      {"DCMSTREAMS_STUDY_UID", job.study_uid},
                      {"DCMSTREAMS_SERIES_UID", job.series_uid}};
  auto run = run_command(spec, cancel);
  if (run.output_left_out > 0)
    log.line(std::to_string(run.output_left_out) + " of the program's " +
             std::to_string(run.output_bytes) +
             " bytes of output were left out of this log (log_limit_mb)");
  job_outcome outcome;
  outcome.seconds = run.seconds;
  outcome.message = run.message;
  outcome.stopped_by_node = run.timed_out || run.cancelled;
  if (run.cancelled)
    outcome.state = job_state::cancelled;
  else
    outcome.state = run.succeeded() ? job_state::success : job_state::failed;
  if (!run.started)
    outcome.message = "the program did not start: " + run.message;
  return outcome;
}

// What a running pipeline is doing, for the UI (GET /api/v1/jobs/{id}):
// jobs/<id>/progress.json, replaced as each phase starts and removed when the
// run ends. Not synced: a crash ends the run it describes.
class progress_report {
public:
  progress_report(fs::path file, std::size_t steps) : file_(std::move(file)), steps_(steps) {}
  ~progress_report() {
    std::error_code ignored;
    fs::remove(file_, ignored);
  }
  progress_report(const progress_report&) = delete;
  progress_report& operator=(const progress_report&) = delete;

  /// `step` 0 is loading the volumes, 1..steps the kernel steps, steps + 1
  /// writing the results.
  void phase(std::size_t step, const std::string& doing) {
    json::value progress = {
        {"step", step}, {"steps", steps_}, {"doing", doing}, {"since", iso8601(now_ms())}};
    // Only for the eye: a report that cannot be written costs the job nothing.
    (void)write_file_atomically(file_, json::dump(progress) + "\n", false);
  }

private:
  fs::path file_;
  std::size_t steps_;
};

job_outcome run_kernels(const store_layout& layout, const job_record& job, const job_plan& plan,
                        cancel_token& cancel, job_log& log) {
  job_outcome outcome;
  auto dir = layout.job_dir(job.id);
  progress_report progress{dir / "progress.json", plan.steps.size()};
  auto files = input_files(dir / "INPUT");
  auto output = dir / "OUTPUT";
  bool needs_volumes = false, deidentify_outputs = false, makes_images = false;
  deidentify_options deidentification;
  for (auto& step : plan.steps) {
    needs_volumes |= step.kernel != "deidentify";
    deidentify_outputs |= step.kernel == "deidentify";
    deidentification.shift_dates |= step.kernel == "deidentify" && step.shift_dates;
    makes_images |= step.makes_image();
  }
  deidentification.keep_mapping = plan.pseudonyms.keep_mapping;
  // The node's secret keys the pseudonyms: the same study is de-identified
  // into the same study in every job.
  std::string pseudonym_key;
  if (deidentify_outputs) {
    auto key = load_secret(plan.pseudonyms.key_file, false);
    if (!key) {
      outcome.message = "cannot de-identify: " + key.error().message;
      return outcome;
    }
    pseudonym_key = std::move(*key);
  }
  loaded_series loaded;
  if (needs_volumes) {
    progress.phase(0, "loading " + std::to_string(files.size()) + " instances");
    auto start = clock::now();
    auto read = load_series(files);
    if (!read) {
      outcome.message = read.error().message;
      return outcome;
    }
    loaded = std::move(*read);
    for (auto& skipped : loaded.skipped)
      log.line("not an image volume, left out: " + skipped);
    for (auto& unreadable : loaded.unreadable)
      log.line("cannot be read, left out: " + unreadable);
    if (loaded.series.empty()) {
      outcome.message =
          "no image series to process among " + std::to_string(files.size()) + " instances";
      return outcome;
    }
    log.line("loaded " + std::to_string(loaded.series.size()) + " series from " +
             std::to_string(files.size()) + " instances in " +
             std::to_string(static_cast<int>(seconds_since(start) * 1000)) + " ms");
  }
  std::vector<volume> images;
  for (auto& series : loaded.series)
    images.push_back(series.image);
  std::string derivation;
  auto stats = json::value::array(); // one entry per series and stats step
  bool has_stats = false;
  for (std::size_t step_index = 0; step_index < plan.steps.size(); ++step_index) {
    auto& step = plan.steps[step_index];
    progress.phase(step_index + 1, step.describe());
    if (cancel.cancelled()) {
      outcome.state = job_state::cancelled;
      outcome.message = "cancelled before " + step.describe();
      return outcome;
    }
    auto start = clock::now();
    if (step.kernel == "stats") {
      has_stats = true;
      for (std::size_t i = 0; i < images.size(); ++i) {
        auto s = statistics(images[i], step.threshold, step.bins);
        stats.push_back({
            {"SeriesInstanceUID", loaded.series[i].series_uid},
            {"Modality", loaded.series[i].modality},
            {"after", derivation.empty() ? std::string("input") : derivation},
            {"voxels", static_cast<std::uint64_t>(s.voxels)},
            {"mean", s.mean},
            {"std", s.std_dev},
            {"min", s.min},
            {"max", s.max},
            {"threshold", s.threshold},
            {"voxels_above_threshold", static_cast<std::uint64_t>(s.voxels_above)},
            {"volume_above_threshold_ml", s.volume_above_ml},
            {"histogram", {{"edges", s.bin_edges}, {"counts", s.bin_counts}}},
        });
      }
    } else if (step.kernel != "deidentify") {
      // Threshold and window steps right after a gaussian, a median or a
      // threshold or window run inside it, block by block while the voxels
      // are in cache, instead of each in a pass over memory of its own.
      std::vector<kernel_step> fused;
      const bool fuses_after =
          step.kernel == "gaussian" || step.kernel == "median" || voxel_pass::can_fuse(step);
      while (fuses_after && step_index + 1 + fused.size() < plan.steps.size() &&
             voxel_pass::can_fuse(plan.steps[step_index + 1 + fused.size()]))
        fused.push_back(plan.steps[step_index + 1 + fused.size()]);
      for (auto& image : images) {
        if (step.kernel == "gaussian" || step.kernel == "median") {
          voxel_pass then{image, fused};
          image = step.kernel == "gaussian" ? gaussian(image, step.sigma_mm, &then,
                                                       step.recursive ? gaussian_method::recursive
                                                                      : gaussian_method::exact)
                                            : median3(image, &then);
        } else if (voxel_pass::can_fuse(step)) {
          std::vector<kernel_step> all{step};
          all.insert(all.end(), fused.begin(), fused.end());
          voxel_pass pass{image, all};
          image = run_voxel_pass(std::move(image), pass);
        } else if (step.kernel == "threshold") {
          image = threshold(std::move(image), step);
        } else if (step.kernel == "mip") {
          image = mip(image, step.slab_mm);
        } else if (step.kernel == "resample") {
          image = resample(image, step);
        }
      }
      derivation += (derivation.empty() ? "" : "; ") + step.describe();
      std::string with = step.describe();
      for (auto& also : fused) {
        derivation += "; " + also.describe();
        with += ", " + also.describe();
      }
      double seconds = seconds_since(start);
      outcome.kernels.push_back({step.kernel, seconds});
      log.line(with + " done in " + std::to_string(static_cast<int>(seconds * 1000)) + " ms" +
               (fused.empty() ? "" : " (in one pass)"));
      // The fused steps took no time of their own (and are not timed, so
      // that they do not pull their kernels' duration metrics down).
      for (auto& also : fused)
        progress.phase(++step_index + 1, also.describe());
      continue;
    }
    double seconds = seconds_since(start);
    outcome.kernels.push_back({step.kernel, seconds});
    log.line(step.describe() + " done in " + std::to_string(static_cast<int>(seconds * 1000)) +
             " ms");
  }

  progress.phase(plan.steps.size() + 1, "writing the results");
  pseudonymizer pseudonyms{pseudonym_key, deidentification};
  std::size_t written = 0;
  if (makes_images) {
    for (std::size_t i = 0; i < images.size(); ++i) {
      derived_series_request request;
      request.source = &loaded.series[i];
      request.image = &images[i];
      request.stream = plan.stream;
      request.derivation = derivation;
      request.out_dir = output / ("series" + std::to_string(i + 1));
      request.deidentify_with = deidentify_outputs ? &pseudonyms : nullptr;
      auto files_written = write_derived_series(request);
      if (!files_written) {
        outcome.message = files_written.error().message;
        return outcome;
      }
      written += files_written->size();
    }
  } else if (deidentify_outputs) {
    for (auto& file : files) {
      if (auto problem = deidentify_file(file, output / file.filename(), pseudonyms)) {
        outcome.message = problem->message;
        return outcome;
      }
      ++written;
    }
  }
  if (deidentification.keep_mapping) {
    // Asked for, so a job whose pseudonyms cannot be kept fails: its output
    // could not be traced back.
    auto db = database::open(layout.database_file());
    status problem = db ? (*db)->record_pseudonyms(pseudonyms.take_records(), job.id)
                        : status{failure{db.error()}};
    if (problem) {
      outcome.message = "cannot keep the pseudonyms (deidentify.keep_mapping): " + problem->message;
      return outcome;
    }
  }
  if (has_stats) {
    json::value result = {{"series", std::move(stats)}};
    if (auto problem =
            write_file_atomically(output / "result.json", json::dump(result, true) + "\n", false)) {
      outcome.message = problem->message;
      return outcome;
    }
  }
  outcome.state = job_state::success;
  outcome.message =
      std::to_string(written) + " instances written" + (has_stats ? " and result.json" : "");
  if (!loaded.unreadable.empty())
    outcome.message += "; " + std::to_string(loaded.unreadable.size()) +
                       " input instances could not be read and were left out (see "
                       "processing.log), the first: " +
                       loaded.unreadable.front();
  (void)job;
  return outcome;
}

} // namespace

void append_job_log(const fs::path& log_file, const std::string& text) {
  job_log{log_file}.line(text);
}

result<job_outcome> read_proc_json(const fs::path& file) {
  auto doc = json::load_file(file);
  if (!doc)
    return doc.error();
  if (!doc->is_array() || doc->empty() || !(*doc)[0].is_object())
    return failure{ec::invalid_config,
                   file.string() + ": must be [{\"success\": \"...\", \"message\": \"...\"}]"};
  json::problems problems{file.string(), {}};
  json::object_reader reader{(*doc)[0], "[0]", problems};
  job_outcome outcome;
  auto success = reader.get_string("success");
  if (!success)
    return failure{ec::invalid_config, file.string() + ": [0].success must be a string"};
  outcome.verdict = *success;
  outcome.state = *success == "success" ? job_state::success : job_state::failed;
  outcome.message = reader.get_string("message").value_or("");
  if (outcome.state == job_state::failed && outcome.message.empty())
    outcome.message = *success;
  return outcome;
}

// A failed job whose output filled the data disk would leave the node unable
// to record that it failed (SQLite, info.json and proc.json need space too):
// its row would stay "running", which the scrubber must never delete, and
// ingest would refuse every store until someone deleted files by hand. The
// output of a failed job is never routed, so it goes, and the message says so.
void free_the_disk_of_a_failed_output(const fs::path& output, job_outcome& outcome) {
  constexpr std::uint64_t full_below = 1 << 20;
  auto space = free_bytes(output);
  if (outcome.state != job_state::failed || !space || *space >= full_below)
    return;
  std::error_code error;
  std::uint64_t bytes = 0;
  for (auto& entry : fs::recursive_directory_iterator(output, error))
    if (entry.is_regular_file(error))
      bytes += entry.file_size(error);
  fs::remove_all(output, error);
  fs::create_directories(output, error);
  outcome.message += "; the data disk was full, so this failed job's OUTPUT (" +
                     std::to_string(bytes >> 20) + " MiB) was removed to free it";
}

job_outcome run_job(const store_layout& layout, const job_record& job, const job_plan& plan,
                    cancel_token& cancel) {
  auto start = clock::now();
  auto dir = layout.job_dir(job.id);
  auto output = dir / "OUTPUT";
  job_log log{dir / "processing.log"};
  job_outcome outcome;
  std::error_code error;
  fs::remove_all(output, error);
  fs::remove(dir / "proc.json", error);
  if (auto problem = create_directories(output, false)) {
    outcome.message = problem->message;
  } else {
    log.line("job " + std::to_string(job.id) + " of stream " + plan.stream + " starts: " +
             (plan.command.empty() ? std::to_string(plan.steps.size()) + " kernel steps"
                                   : plan.command.front()));
    try {
      outcome = plan.command.empty() ? run_kernels(layout, job, plan, cancel, log)
                                     : run_program(dir, job, plan, cancel, log);
    } catch (const std::bad_alloc&) {
      outcome = {};
      outcome.message = "not enough memory for the job's volumes";
    } catch (const std::exception& e) {
      outcome = {};
      outcome.message = std::string("the job stopped with an error: ") + e.what();
    }
  }
  outcome.seconds = seconds_since(start);
  free_the_disk_of_a_failed_output(output, outcome);
  // A program that wrote its own proc.json decides its outcome; a cancel or
  // a timeout decides over it.
  auto own = dir / "proc.json";
  if (fs::exists(own) && !plan.command.empty() && !outcome.stopped_by_node) {
    if (auto written = read_proc_json(own)) {
      outcome.state = written->state;
      outcome.message = written->message;
    } else {
      outcome.state = job_state::failed;
      outcome.message = written.error().message;
      write_file_atomically(own, proc_json("failed", outcome.message), false);
    }
  } else {
    auto success = outcome.state == job_state::success ? std::string("success")
                                                       : std::string(to_string(outcome.state));
    write_file_atomically(
        own, proc_json(success, outcome.state == job_state::success ? "" : outcome.message), false);
  }
  log.line("job " + std::to_string(job.id) + " " + to_string(outcome.state) + " in " +
           std::to_string(static_cast<int>(outcome.seconds * 1000)) + " ms" +
           (outcome.message.empty() ? "" : ": " + outcome.message));
  return outcome;
}

} // namespace dcmstreams
