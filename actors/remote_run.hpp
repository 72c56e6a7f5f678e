#pragma once
// The head's side of a job that runs on a worker (docs/cluster.md): a
// detached blocking actor that hands the job over, serves its INPUT/ in
// chunks, takes the results back in chunks into a folder of this attempt
// alone, and adopts them into the job folder only when all of them are there
// and the worker still counts as alive. A worker lost on the way (killed,
// hung, cut off) gives the job back to the queue once; its results, should
// they come later, find no runner and are dropped by the worker.

#include "actors/actors.hpp"
#include "actors/slot_table.hpp"
#include "pipeline/jobs/store.hpp"

namespace dcmstreams {

/// Runs `job` on the worker of `slot`; blocks until the run ended or was
/// given up. Afterwards the job folder is as after a run on the head
/// (OUTPUT/, proc.json, processing.log with the worker's lines), or, with
/// state `queued`, the worker was lost and the job should run again;
/// job.worker and job.lost_runs are updated.
job_outcome run_on_worker(caf::blocking_actor* self, const placement& slot,
                          const store_layout& layout, job_record& job, const job_plan& plan,
                          cancel_token& cancel, const slot_table& slots);

/// "12 files, 48.0 MB in 0.21 s (228 MB/s)", for logs of a transfer.
std::string transfer_text(std::size_t files, std::uint64_t bytes, double seconds);

} // namespace dcmstreams
