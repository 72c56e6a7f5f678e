#include "pipeline/routing/send_policy.hpp"

#include <algorithm>
#include <cmath>

namespace dcmstreams {

file_send_state file_state_of(const file_outcome& outcome) {
  if (!outcome.sent)
    return file_send_state::pending; // not attempted (no association): try again
  if (outcome.dimse_status == 0)
    return file_send_state::sent;
  if (is_warning_status(outcome.dimse_status))
    return file_send_state::warning;
  return file_send_state::refused;
}

double retry_delay_s(const sending_config& sending, std::int64_t attempt, double jitter) {
  double delay =
      sending.retry_initial_s *
      std::pow(sending.retry_factor, static_cast<double>(std::max<std::int64_t>(0, attempt - 1)));
  return std::min(delay, sending.retry_max_s) * jitter;
}

send_tally tally(const std::vector<send_file>& files) {
  send_tally t;
  for (auto& file : files) {
    if (is_stored(file.state))
      ++t.stored;
    else if (file.state == file_send_state::refused)
      ++t.refused;
    else if (file.state == file_send_state::missing)
      ++t.missing;
    else
      ++t.pending;
  }
  return t;
}

send_verdict conclude_attempt(const send_task& task, const send_tally& files,
                              const sending_config& sending, const std::string& last_problem,
                              double jitter) {
  auto unsent = std::to_string(files.pending + files.refused);
  if (files.pending == 0 && files.refused == 0) {
    if (files.missing == 0)
      return {send_state::done, std::to_string(files.stored) + " files stored"};
    return {send_state::failed, std::to_string(files.missing) + " files no longer exist"};
  }
  if (task.attempts >= sending.max_attempts)
    return {send_state::failed, unsent + " of " + std::to_string(task.files_total) +
                                    " files not stored after " + std::to_string(task.attempts) +
                                    " attempts: " + last_problem +
                                    " (retry the send when the destination is fixed)"};
  return {send_state::retrying, unsent + " files not stored yet: " + last_problem,
          retry_delay_s(sending, task.attempts, jitter)};
}

} // namespace dcmstreams
