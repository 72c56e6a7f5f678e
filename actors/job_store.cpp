#include "actors/job_store.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/scrub.hpp"
#include "pipeline/jobs/views.hpp"

#include <chrono>
#include <thread>

namespace dcmstreams {

namespace {
void publish_job(job_store_state& st, const job_record& job) {
  if (st.settings.events)
    // Everyone on the event feed sees it: who the patient is stays out.
    st.settings.events->publish("job", job_view(job, false));
}
// A commit's bounds: its consumption record (a reference per record) stays
// far below a journal record's limit, and no study waits behind thousands.
constexpr std::size_t max_studies_per_commit = 64;
constexpr std::size_t max_instances_per_commit = 20000;

void commit_studies(job_store_state& st) {
  if (st.to_commit.empty())
    return;
  auto waiting = std::move(st.to_commit);
  st.to_commit.clear();
  std::vector<completed_study> studies;
  studies.reserve(waiting.size());
  for (auto& entry : waiting)
    studies.push_back(std::move(entry.study));
  auto outcomes = st.jobs->create_jobs(studies);
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    if (!outcomes[i]) {
      waiting[i].promise.deliver(make_error(outcomes[i].error()));
      continue;
    }
    for (auto& job : *outcomes[i])
      publish_job(st, job);
    waiting[i].promise.deliver(std::move(*outcomes[i]));
  }
}

} // namespace

job_store_state::~job_store_state() {
  for (auto& waiting : to_commit)
    if (waiting.promise.pending())
      waiting.promise.deliver(make_error(ec::unavailable, "the job store stopped before it made "
                                                          "the jobs of " +
                                                              waiting.study.key.describe()));
}

job_store_actor::behavior_type job_store(job_store_actor::stateful_pointer<job_store_state> self,
                                         job_store_settings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.layout = std::make_unique<store_layout>(st.settings.data_dir);
  st.jobs = std::make_unique<intake>(*st.layout, *st.settings.db, *st.settings.ingest_journal,
                                     st.settings.durable);
  return {
      [self](create_atom, const completed_study& study) -> caf::result<std::vector<job_record>> {
        auto& st = self->state;
        auto promise = self->make_response_promise<std::vector<job_record>>();
        // The first study of a commit asks for it behind every message
        // already in the mailbox, so the studies among them join it.
        if (st.to_commit.empty())
          self->send(self, create_atom::value);
        st.to_commit.push_back({study, promise});
        std::size_t instances = 0;
        for (auto& waiting : st.to_commit)
          instances += waiting.study.instances.size();
        if (st.to_commit.size() >= max_studies_per_commit || instances >= max_instances_per_commit)
          commit_studies(st);
        return promise;
      },
      [self](create_atom) { commit_studies(self->state); },
      [](pause_atom, double seconds) {
        log::warning("jobs",
                     "test hook: the job store stalls for " + std::to_string(seconds) + " s");
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      },
      [self](discard_atom, const std::vector<journal_ref>& records) {
        self->state.jobs->discard_replaced(records);
      },
      [self](recover_atom) -> recovery_report { return self->state.jobs->recover(); },
      [self](get_atom, pending_atom) {
        std::vector<std::string> problems;
        auto pending = self->state.jobs->pending_instances(problems);
        for (auto& problem : problems)
          log::warning("jobs", problem);
        return pending;
      },
      [self](update_atom, const job_record& job) {
        if (auto problem = self->state.settings.db->update_job(job))
          log::error("jobs", problem->message);
        // A job queued (again) has not been routed in this run.
        if (job.state == job_state::queued)
          self->state.settings.db->mark_routed(job.id, 0);
        auto info = self->state.layout->job_dir(job.id) / "info.json";
        if (auto problem = write_file_atomically(info, job_info_json(job), false))
          log::error("jobs", problem->message);
        publish_job(self->state, job);
      },
      [self](get_atom, queued_atom) -> caf::result<std::vector<job_record>> {
        auto running = self->state.settings.db->jobs_in_state(job_state::running);
        if (!running)
          return make_error(running.error());
        auto queued = self->state.settings.db->jobs_in_state(job_state::queued);
        if (!queued)
          return make_error(queued.error());
        running->insert(running->end(), queued->begin(), queued->end());
        return *running;
      },
      [self](get_atom, job_atom, std::int64_t id) -> caf::result<job_record> {
        auto found = self->state.settings.db->find_job(id);
        if (!found)
          return make_error(found.error());
        if (!*found)
          return make_error(ec::not_found, "no job " + std::to_string(id));
        return **found;
      },
      [self](get_atom, stats_atom) -> caf::result<std::vector<stream_stats>> {
        auto durations = self->state.settings.db->durations_by_stream();
        if (!durations)
          return make_error(durations.error());
        std::vector<stream_stats> stats;
        for (auto& d : *durations) {
          stream_stats s;
          s.stream = d.stream;
          s.runs = static_cast<std::uint64_t>(d.runs);
          s.mean_s = d.mean_s;
          s.std_s = d.std_s;
          stats.push_back(std::move(s));
        }
        return stats;
      },
      [self](get_atom, jobs_atom, const job_filter& filter) -> caf::result<job_page> {
        auto page = self->state.settings.db->list_jobs(filter);
        if (!page)
          return make_error(page.error());
        return std::move(*page);
      },
      [self](delete_atom, std::int64_t id) -> caf::result<job_record> {
        auto& st = self->state;
        auto removed = remove_finished_job(*st.settings.db, *st.layout, id);
        if (!removed)
          return make_error(removed.error());
        if (st.settings.events)
          st.settings.events->publish("deleted", {{"id", id}});
        return removed->job;
      },
      [self](get_atom, sends_atom, std::int64_t job_id) -> caf::result<std::vector<send_task>> {
        auto sends = self->state.settings.db->sends_of_job(job_id);
        if (!sends)
          return make_error(sends.error());
        return std::move(*sends);
      },
      [self](get_atom, send_atom, std::int64_t id) -> caf::result<send_detail> {
        auto found = self->state.settings.db->find_send(id);
        if (!found)
          return make_error(found.error());
        if (!*found)
          return make_error(ec::not_found, "no send " + std::to_string(id));
        auto files = self->state.settings.db->send_files(id);
        if (!files)
          return make_error(files.error());
        return send_detail{**found, std::move(*files)};
      },
      [self](get_atom, pseudonym_atom,
             const std::string& pseudonym) -> caf::result<std::vector<database::kept_pseudonym>> {
        auto found = self->state.settings.db->find_pseudonym(pseudonym);
        if (!found)
          return make_error(found.error());
        if (found->empty())
          return make_error(ec::not_found,
                            "no pseudonym " + pseudonym +
                                " is kept (only those given while deidentify.keep_mapping is on)");
        return std::move(*found);
      },
      [self](ping_atom) -> caf::result<bool> {
        if (auto problem = self->state.settings.db->writable())
          return make_error(*problem);
        return true;
      },
  };
}

} // namespace dcmstreams
