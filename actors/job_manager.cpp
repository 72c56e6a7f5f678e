#include "actors/job_manager.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

namespace {

constexpr const char* component = "jobs";

using manager_pointer = job_manager_actor::stateful_pointer<job_manager_state>;

stream_mailbox_actor spawn_mailbox(manager_pointer self, const std::string& stream,
                                   double resume_after_s) {
  auto& st = self->state;
  mailbox_settings settings;
  settings.stream = stream;
  settings.job_store = st.settings.job_store;
  settings.router = st.settings.router;
  settings.manager = st.settings.reachable_as ? st.settings.reachable_as : job_manager_actor{self};
  settings.registry = st.settings.registry;
  settings.data_dir = st.settings.data_dir;
  settings.pseudonyms = st.settings.pseudonyms;
  settings.slots = st.settings.slots;
  settings.notifier = st.settings.notifier;
  settings.metrics = st.settings.metrics;
  if (auto h = st.history.find(stream); h != st.history.end())
    settings.history = h->second;
  auto& running = (*st.settings.running)[stream];
  if (!running)
    running = std::make_shared<running_jobs>();
  settings.running = running;
  settings.resume_after_s = resume_after_s;
  // Linked: a mailbox that dies tells the manager (exit handler below), and
  // all of them stop with the manager.
  auto box = self->spawn<caf::linked>(stream_mailbox, std::move(settings));
  st.mailboxes[stream] = box;
  return box;
}

stream_mailbox_actor mailbox_for(manager_pointer self, const std::string& stream) {
  auto it = self->state.mailboxes.find(stream);
  if (it != self->state.mailboxes.end())
    return it->second;
  // A restarted manager lost its mailboxes' queues: each new one reads its
  // queue from the database before it starts anything.
  return spawn_mailbox(self, stream, self->state.settings.restarted ? 0.0 : -1.0);
}

/// A mailbox died: a new one takes over its stream after a back-off
/// (restart_backoff); a mailbox that keeps dying takes the manager down with
/// it, for the manager's supervisor to restart.
void restart_mailbox(manager_pointer self, const std::string& stream, const caf::error& reason) {
  auto& st = self->state;
  st.mailboxes.erase(stream);
  death_notice notice{component, "the mailbox of stream " + stream, "stream_mailbox:" + stream,
                      "running jobs go on; a new mailbox takes the queue from the database",
                      "the job manager stops with it"};
  auto delay = record_death(st.restarts[stream], notice, reason, st.settings.metrics);
  if (!delay) {
    self->quit(reason);
    return;
  }
  spawn_mailbox(self, stream, *delay);
}

/// A restarted manager starts a mailbox for every stream with queued jobs in
/// the database; each takes its queue from there.
void resume_queued_streams(manager_pointer self) {
  self->request(self->state.settings.job_store, caf::infinite, get_atom::value, queued_atom::value)
      .then(
          [self](std::vector<job_record>& stored) {
            for (auto& job : stored)
              mailbox_for(self, job.stream);
            log::info(component, "the job manager is back; " +
                                     std::to_string(self->state.mailboxes.size()) +
                                     " streams have queued or running jobs");
          },
          [](caf::error& e) {
            log::error(component, "the restarted job manager cannot read the queue: " +
                                      describe(e) + "; queued jobs run when the node starts again");
          });
}

} // namespace

job_manager_actor::behavior_type job_manager(manager_pointer self, job_manager_settings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  for (auto& h : st.settings.history)
    st.history[h.stream] = h;
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& [stream, box] : self->state.mailboxes)
      if (caf::actor_cast<caf::actor_addr>(box) == msg.source) {
        if (msg.reason) // a mailbox never stops on its own
          restart_mailbox(self, std::string{stream}, msg.reason);
        return;
      }
    // Not from a mailbox: the node stops (or a link of the manager died).
    self->quit(msg.reason);
  });
  if (st.settings.restarted)
    resume_queued_streams(self);
  return {
      [self](job_atom, std::vector<job_record>& jobs) {
        for (auto& job : jobs) {
          if (job.state == job_state::skipped) {
            if (auto* m = self->state.settings.metrics)
              m->jobs_total.with({job.stream, "skipped"}).increment();
            log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream +
                                     " skipped: " + job.message);
            continue;
          }
          self->send(mailbox_for(self, job.stream), job_atom::value, std::move(job));
        }
      },
      [self](finished_atom, job_record& job, job_outcome& outcome) {
        self->send(mailbox_for(self, job.stream), finished_atom::value, std::move(job),
                   std::move(outcome));
      },
      [self](kill_atom, const std::string& stream) {
        auto it = self->state.mailboxes.find(stream);
        if (it == self->state.mailboxes.end())
          return false;
        log::warning(component, "test hook: killing the mailbox of stream " + stream);
        crash_for_test(caf::actor_cast<caf::strong_actor_ptr>(it->second), "killed by a test hook");
        return true;
      },
      [self](cancel_atom, std::int64_t id) -> caf::result<bool> {
        auto promise = self->make_response_promise<bool>();
        self->request(self->state.settings.job_store, caf::infinite, get_atom::value,
                      job_atom::value, id)
            .then(
                [self, promise, id](job_record& job) mutable {
                  if (job.state != job_state::queued && job.state != job_state::running) {
                    promise.deliver(false);
                    return;
                  }
                  self->request(mailbox_for(self, job.stream), caf::infinite, cancel_atom::value,
                                id)
                      .then([promise](bool found) mutable { promise.deliver(found); },
                            [promise](caf::error& e) mutable { promise.deliver(e); });
                },
                [promise](caf::error& e) mutable { promise.deliver(e); });
        return promise;
      },
      [self](retry_atom, std::int64_t id) -> caf::result<job_record> {
        auto promise = self->make_response_promise<job_record>();
        self->request(self->state.settings.job_store, caf::infinite, get_atom::value,
                      job_atom::value, id)
            .then(
                [self, promise](job_record& job) mutable {
                  if (!is_finished(job.state)) {
                    promise.deliver(make_error(ec::invalid_argument,
                                               "job " + std::to_string(job.id) + " is " +
                                                   to_string(job.state) +
                                                   "; only a finished job can run again"));
                    return;
                  }
                  job.state = job_state::queued;
                  job.started = 0;
                  job.finished = 0;
                  job.message = "queued again on request";
                  self->send(self->state.settings.job_store, update_atom::value, job);
                  self->send(mailbox_for(self, job.stream), job_atom::value, job);
                  promise.deliver(job);
                },
                [promise](caf::error& e) mutable { promise.deliver(e); });
        return promise;
      },
      [self](get_atom, stats_atom) -> caf::result<std::vector<stream_stats>> {
        // Every stream of the registry, plus streams that only have old jobs.
        auto promise = self->make_response_promise<std::vector<stream_stats>>();
        auto snapshot = self->state.settings.registry->get();
        for (auto& stream : snapshot->streams)
          mailbox_for(self, stream.folder_name);
        auto collected = std::make_shared<std::vector<stream_stats>>();
        auto remaining = std::make_shared<std::size_t>(self->state.mailboxes.size());
        if (*remaining == 0) {
          promise.deliver(*collected);
          return promise;
        }
        for (auto& [name, box] : self->state.mailboxes)
          self->request(box, caf::infinite, get_atom::value, stats_atom::value)
              .then(
                  [promise, collected, remaining](stream_stats& s) mutable {
                    collected->push_back(std::move(s));
                    if (--*remaining == 0)
                      promise.deliver(*collected);
                  },
                  [promise, remaining](caf::error& e) mutable {
                    if (*remaining > 0) {
                      *remaining = 0;
                      promise.deliver(e);
                    }
                  });
        return promise;
      },
  };
}

} // namespace dcmstreams
