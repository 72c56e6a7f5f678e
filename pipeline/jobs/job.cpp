#include "pipeline/jobs/job.hpp"

#include <chrono>
#include <ctime>

namespace dcmstreams {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

epoch_ms now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601(epoch_ms time) {
  if (time == 0)
    return {};
  std::time_t seconds = static_cast<std::time_t>(time / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buffer + n, sizeof buffer - n, ".%03dZ", static_cast<int>(time % 1000));
  return buffer;
}

const char* to_string(job_state state) {
  switch (state) {
  case job_state::creating:
    return "creating";
  case job_state::queued:
    return "queued";
  case job_state::running:
    return "running";
  case job_state::success:
    return "success";
  case job_state::failed:
    return "failed";
  case job_state::cancelled:
    return "cancelled";
  case job_state::skipped:
    return "skipped";
  }
  return "?";
}

std::optional<job_state> parse_job_state(std::string_view text) {
  for (auto state : {job_state::creating, job_state::queued, job_state::running, job_state::success,
                     job_state::failed, job_state::cancelled, job_state::skipped})
    if (text == to_string(state))
      return state;
  return std::nullopt;
}

bool is_finished(job_state state) {
  return state == job_state::success || state == job_state::failed ||
         state == job_state::cancelled || state == job_state::skipped;
}

} // namespace dcmstreams
