#include "pipeline/jobs/job.hpp"

#include "pipeline/foundation/json.hpp"

#include <chrono>
#include <ctime>

namespace dcmstreams {

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

std::string job_info_json(const job_record& job) {
  json::writer out{true};
  out.begin_object();
  out.key("CallerIP").value(job.peer);
  out.key("AETitleCalled").value(job.called_ae);
  out.key("AETitleCaller").value(job.calling_ae);
  out.key("received").value(iso8601(job.received));
  out.key("id").value(job.id);
  out.key("stream").value(job.stream);
  out.key("StudyInstanceUID").value(job.study_uid);
  if (!job.series_uid.empty())
    out.key("SeriesInstanceUID").value(job.series_uid);
  out.key("instances").value(job.instances);
  out.key("bytes").value(job.bytes);
  out.key("completed").value(iso8601(job.completed));
  out.key("state").value(to_string(job.state));
  if (job.started)
    out.key("started").value(iso8601(job.started));
  if (job.finished)
    out.key("finished").value(iso8601(job.finished));
  if (!job.message.empty())
    out.key("message").value(job.message);
  out.end_object();
  return out.str() + "\n";
}

std::string job_json(const job_record& job) {
  json::writer out;
  out.begin_object();
  out.key("id").value(job.id);
  out.key("stream").value(job.stream);
  out.key("state").value(to_string(job.state));
  out.key("called_ae").value(job.called_ae);
  out.key("calling_ae").value(job.calling_ae);
  out.key("peer").value(job.peer);
  out.key("study_uid").value(job.study_uid);
  out.key("series_uid").value(job.series_uid);
  out.key("instances").value(job.instances);
  out.key("bytes").value(job.bytes);
  out.key("received").value(iso8601(job.received));
  out.key("completed").value(iso8601(job.completed));
  out.key("started").value(iso8601(job.started));
  out.key("finished").value(iso8601(job.finished));
  out.key("message").value(job.message);
  out.end_object();
  return out.str();
}

} // namespace dcmstreams
