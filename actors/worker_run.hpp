#pragma once
// A worker's run of one job for the head (docs/cluster.md, the attempt
// protocol in actors.hpp): a detached blocking actor that asks the head's
// runner for the job's inputs, runs the job in a folder of this attempt
// alone, offers the results and sends them in chunks when asked. When the
// runner goes away (the head gave the run up, stopped, or the connection
// broke) the run is cancelled and its results are thrown away.

#include "actors/actors.hpp"

#include <filesystem>

namespace dcmstreams {

struct worker_run_settings {
  std::filesystem::path work_dir; // the worker's folder for runs (--data)
  std::uint64_t run = 0;          // this worker's number of the run: its folder
  remote_job handed;
  caf::actor runner; // the head's runner of this job
};

void worker_run(caf::blocking_actor* self, worker_run_settings settings);

} // namespace dcmstreams
