#pragma once
// Runs one job of a stream in its job folder (DESIGN §5): an external program
// or a chain of built-in kernels; output in OUTPUT/, a log in
// processing.log, the outcome in proc.json. Blocking: callers run it off
// the actor scheduler.

#include "pipeline/execution/command_runner.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/imaging/kernels.hpp"
#include "pipeline/jobs/job.hpp"
#include "pipeline/jobs/store.hpp"
#include <cstdint>

#include <string>
#include <vector>

namespace dcmstreams {

/// What a stream asks for, in plain terms (the stream registry fills it in).
struct job_plan {
  std::string stream;                          // folder name
  std::string title;                           // the stream's display name
  std::vector<std::string> command;            // an external program, or
  std::vector<kernel_step> steps;              // built-in kernels
  double timeout_s = 0;                        // 0: none
  std::uint64_t log_limit_bytes = 64ull << 20; // of the program's output in processing.log
  pseudonym_settings pseudonyms;               // of de-identification
};

struct kernel_timing {
  std::string kernel;
  double seconds = 0;
};

struct job_outcome {
  job_state state = job_state::failed;
  std::string verdict; // proc.json's "success" as written ("success", "failed", "partial"...)
  std::string message;
  double seconds = 0;
  bool stopped_by_node = false; // timeout or cancel: the program's own proc.json does not count
  std::vector<kernel_timing> kernels;
};

/// Runs the job from a clean OUTPUT/: anything there from an earlier run and
/// an earlier proc.json are removed first.
job_outcome run_job(const store_layout& layout, const job_record& job, const job_plan& plan,
                    cancel_token& cancel);

/// Adds a line of the node's own to a job's processing.log, stamped as the
/// node's lines between a program's output are.
void append_job_log(const std::filesystem::path& log_file, const std::string& text);

/// Reads the outcome from a job's proc.json: `[{"success": "...", "message": "..."}]`.
/// "success" means success; anything else is a failure with that text.
result<job_outcome> read_proc_json(const std::filesystem::path& file);

} // namespace dcmstreams
