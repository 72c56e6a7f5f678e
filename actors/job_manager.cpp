#include "actors/job_manager.hpp"

#include "pipeline/foundation/log.hpp"

#include <algorithm>
#include <cmath>

namespace dcmstreams {

namespace {

constexpr const char* component = "jobs";

using mailbox_pointer = stream_mailbox_actor::stateful_pointer<stream_mailbox_state>;

void update_gauges(mailbox_pointer self) {
  if (auto* m = self->state.metrics) {
    m->queue_depth.with({self->state.stream}).set(static_cast<double>(self->state.queue.size()));
    m->jobs_running.with({self->state.stream})
        .set(static_cast<double>(self->state.running->size()));
  }
}

void record(mailbox_pointer self, job_record& job) {
  self->send(self->state.job_store, update_atom::value, job);
}

void finish_without_running(mailbox_pointer self, job_record job, job_state state,
                            const std::string& message) {
  job.state = state;
  job.finished = now_ms();
  job.message = message;
  record(self, job);
  if (auto* m = self->state.metrics)
    m->jobs_total.with({job.stream, to_string(state)}).increment();
  log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream + " " +
                           to_string(state) + ": " + message);
}

void start_next(mailbox_pointer self) {
  auto snapshot = self->state.registry->get();
  auto* stream = snapshot->find_by_name(self->state.stream);
  std::size_t concurrency = stream ? static_cast<std::size_t>(stream->concurrency) : 1;
  while (!self->state.paused && !self->state.queue.empty() &&
         self->state.running->size() < concurrency) {
    auto job = std::move(self->state.queue.front());
    self->state.queue.pop_front();
    if (!stream || !stream->enabled) {
      finish_without_running(self, std::move(job), job_state::failed,
                             "stream " + self->state.stream +
                                 (stream ? " is disabled" : " no longer exists") +
                                 "; re-run the job once it is back");
      continue;
    }
    job.state = job_state::running;
    job.started = now_ms();
    job.finished = 0;
    job.message.clear();
    record(self, job);
    auto cancel = std::make_shared<cancel_token>();
    (*self->state.running)[job.id] = {job, cancel};
    log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream +
                             " starts (" + std::to_string(job.instances) + " instances)");
    auto plan = plan_for(*stream);
    store_layout layout{self->state.data_dir};
    auto manager = self->state.manager;
    // The run blocks (a process, kernels, whole-study I/O): its own thread.
    self->system().spawn<caf::detached>([=](caf::blocking_actor* runner) {
      auto outcome = run_job(layout, job, plan, *cancel);
      runner->send(manager, finished_atom::value, job, outcome);
    });
  }
  update_gauges(self);
}

} // namespace

job_plan plan_for(const streams::stream_definition& stream) {
  job_plan plan;
  plan.stream = stream.folder_name;
  plan.title = stream.name;
  plan.command = stream.command;
  plan.steps = stream.pipeline;
  plan.timeout_s = stream.timeout_s;
  return plan;
}

namespace {

bool is_known(mailbox_pointer self, std::int64_t id) {
  auto& st = self->state;
  return st.running->count(id) > 0 ||
         std::any_of(st.queue.begin(), st.queue.end(),
                     [id](const job_record& queued) { return queued.id == id; });
}

/// After a restart: the stream's queued jobs from the database go first, in
/// their order, then whatever arrived meanwhile; running jobs carry on.
void resume(mailbox_pointer self, std::vector<job_record>& stored) {
  auto& st = self->state;
  std::deque<job_record> queue;
  for (auto& job : stored)
    if (job.stream == st.stream && job.state == job_state::queued && !is_known(self, job.id))
      queue.push_back(std::move(job));
  log::info(component, "the mailbox of stream " + st.stream +
                           " is back: " + std::to_string(queue.size() + st.queue.size()) +
                           " jobs queued, " + std::to_string(st.running->size()) + " running");
  for (auto& job : st.queue)
    queue.push_back(std::move(job));
  st.queue = std::move(queue);
  st.paused = false;
  start_next(self);
}

} // namespace

stream_mailbox_actor::behavior_type stream_mailbox(mailbox_pointer self,
                                                   mailbox_settings settings) {
  auto& st = self->state;
  st.stream = std::move(settings.stream);
  st.job_store = std::move(settings.job_store);
  st.router = std::move(settings.router);
  st.manager = std::move(settings.manager);
  st.registry = std::move(settings.registry);
  st.data_dir = std::move(settings.data_dir);
  st.metrics = settings.metrics;
  st.running = settings.running ? settings.running : std::make_shared<running_jobs>();
  auto& history = settings.history;
  st.runs = history.runs;
  st.mean_s = history.mean_s;
  st.m2 = history.std_s * history.std_s * static_cast<double>(history.runs);
  if (settings.resume_after_s >= 0) {
    st.paused = true;
    self->delayed_send(self, seconds(settings.resume_after_s), recover_atom::value);
  }
  return {
      [self](job_atom, job_record& job) {
        if (is_known(self, job.id))
          return;
        self->state.queue.push_back(std::move(job));
        start_next(self);
      },
      [self](recover_atom) {
        self->request(self->state.job_store, caf::infinite, get_atom::value, queued_atom::value)
            .then([self](std::vector<job_record>& stored) { resume(self, stored); },
                  [self](caf::error& e) {
                    log::error(component, "the mailbox of stream " + self->state.stream +
                                              " cannot read its queue back: " + describe(e) +
                                              "; it runs what it gets from now on");
                    std::vector<job_record> none;
                    resume(self, none);
                  });
      },
      [self](finished_atom, job_record& job, const job_outcome& outcome) {
        self->state.running->erase(job.id);
        job.state = outcome.state;
        job.finished = now_ms();
        job.message = outcome.message;
        record(self, job);
        log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream + " " +
                                 to_string(job.state) + " after " +
                                 std::to_string(outcome.seconds) + " s" +
                                 (job.message.empty() ? "" : ": " + job.message));
        auto& st = self->state;
        if (outcome.state == job_state::success) {
          ++st.runs;
          double delta = outcome.seconds - st.mean_s;
          st.mean_s += delta / static_cast<double>(st.runs);
          st.m2 += delta * (outcome.seconds - st.mean_s);
        }
        if (auto* m = st.metrics) {
          m->jobs_total.with({job.stream, to_string(job.state)}).increment();
          m->job_duration.with({job.stream}).observe(outcome.seconds);
          for (auto& k : outcome.kernels)
            m->kernel_duration.with({k.kernel}).observe(k.seconds);
        }
        // Results leave by the routing rules; a cancelled job's do not.
        if (st.router && (job.state == job_state::success || job.state == job_state::failed))
          self->send(st.router, route_atom::value, job);
        start_next(self);
      },
      [self](cancel_atom, std::int64_t id) -> bool {
        auto& queue = self->state.queue;
        for (auto it = queue.begin(); it != queue.end(); ++it) {
          if (it->id != id)
            continue;
          auto job = std::move(*it);
          queue.erase(it);
          finish_without_running(self, std::move(job), job_state::cancelled,
                                 "cancelled before it ran");
          update_gauges(self);
          return true;
        }
        auto running = self->state.running->find(id);
        if (running == self->state.running->end())
          return false;
        log::info(component, "cancelling running job " + std::to_string(id));
        running->second.cancel->cancel();
        return true;
      },
      [self](get_atom, stats_atom) {
        auto& st = self->state;
        stream_stats stats;
        stats.stream = st.stream;
        stats.queued = st.queue.size();
        stats.running = st.running->size();
        for (auto& [id, run] : *st.running)
          stats.running_jobs.push_back(id);
        stats.runs = st.runs;
        stats.mean_s = st.mean_s;
        stats.std_s = st.runs > 0 ? std::sqrt(st.m2 / static_cast<double>(st.runs)) : 0;
        return stats;
      },
  };
}

namespace {

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
