#include "actors/notifier.hpp"

#include "pipeline/execution/job_runner.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/views.hpp"

namespace dcmstreams {

namespace {

constexpr const char* component = "notify";

} // namespace

std::string notification_body(const job_record& job, const std::string& ae_title) {
  json::value body = {{"event", std::string("job.") + to_string(job.state)},
                      {"node", ae_title},
                      {"job", job_view(job)}};
  return json::dump(body);
}

notifier_actor::behavior_type notifier(notifier_actor::stateful_pointer<notifier_state> self,
                                       notifier_settings settings) {
  self->state.settings = std::move(settings);
  return {
      [self](notify_atom, const job_record& job, const std::string& url, const std::string& ca,
             std::uint32_t attempt) {
        auto& s = self->state.settings;
        auto log_file = store_layout{s.data_dir}.job_dir(job.id) / "processing.log";
        auto answer = s.client->post(url, notification_body(job, s.ae_title), s.timeout_s, ca);
        bool delivered = answer && *answer >= 200 && *answer < 300;
        auto tries = attempt == 1 ? std::string{} : " (attempt " + std::to_string(attempt) + ")";
        if (delivered) {
          append_job_log(log_file, "notified " + url + ": HTTP " + std::to_string(*answer) + tries);
          if (s.metrics)
            s.metrics->notifications.with({job.stream, "delivered"}).increment();
          return;
        }
        auto why = answer ? "it answered HTTP " + std::to_string(*answer) : answer.error().message;
        if (attempt < s.attempts) {
          auto wait_s = static_cast<double>(1u << (attempt - 1));
          append_job_log(log_file, "could not notify " + url + tries + ": " + why +
                                       "; trying again in " + log::seconds_text(wait_s));
          self->delayed_send(self, seconds(wait_s), notify_atom::value, job, url, ca, attempt + 1);
          return;
        }
        auto message = "could not notify " + url + " in " + std::to_string(attempt) +
                       " attempts, the last: " + why;
        append_job_log(log_file, message + "; the job itself is not affected");
        log::warning(component, "job " + std::to_string(job.id) + ": " + message +
                                    " (check the stream's notify url)");
        if (s.metrics)
          s.metrics->notifications.with({job.stream, "failed"}).increment();
      },
  };
}

} // namespace dcmstreams
