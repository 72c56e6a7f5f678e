#pragma once
// How a send moves from state to state, apart from the actor that sends it
// (actors/sender.cpp): what a file's outcome makes of it, how long to wait
// before the next attempt, and where the send stands after an attempt.

#include "pipeline/foundation/config.hpp"
#include "pipeline/jobs/send.hpp"
#include "pipeline/routing/storage_client.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace dcmstreams {

/// A file's state after an attempt that got `outcome` for it.
file_send_state file_state_of(const file_outcome& outcome);

/// The wait before attempt `attempt` + 1: exponential from `retry_initial_s`,
/// capped at `retry_max_s`, times `jitter` (the sender draws it in 0.8-1.2, so
/// that many sends to one destination that came back do not retry at once).
double retry_delay_s(const sending_config& sending, std::int64_t attempt, double jitter);

/// A send's files by their state after an attempt.
struct send_tally {
  std::int64_t stored = 0;
  std::int64_t refused = 0;
  std::int64_t pending = 0;
  std::int64_t missing = 0;
};
send_tally tally(const std::vector<send_file>& files);

/// Where a send goes after an attempt.
struct send_verdict {
  send_state state = send_state::retrying;
  std::string message;
  double retry_in_s = 0; // for retrying
};

/// Done when every file is stored; failed when files are gone or the
/// attempts are used up; else retrying after `retry_delay_s`.
/// `last_problem` says why the last file was not stored.
send_verdict conclude_attempt(const send_task& task, const send_tally& files,
                              const sending_config& sending, const std::string& last_problem,
                              double jitter);

} // namespace dcmstreams
