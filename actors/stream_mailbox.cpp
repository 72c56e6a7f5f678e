#include "actors/stream_mailbox.hpp"

#include "actors/remote_run.hpp"
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

/// Tells the stream's notify targets that asked for this end of a job.
void notify_ended(mailbox_pointer self, const job_record& job) {
  if (!self->state.notifier)
    return;
  auto snapshot = self->state.registry->get();
  auto* stream = snapshot->find_by_name(self->state.stream);
  if (!stream)
    return;
  std::string state = to_string(job.state);
  for (auto& target : stream->notify)
    if (std::find(target.on.begin(), target.on.end(), state) != target.on.end())
      self->send(self->state.notifier, notify_atom::value, job, target.url, target.ca,
                 std::uint32_t{1});
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
  notify_ended(self, job);
}

/// Whether a job of this plan must run on the head: de-identification needs
/// the node's secret (and its database when mappings are kept).
bool needs_the_head(const job_plan& plan) {
  return std::any_of(plan.steps.begin(), plan.steps.end(),
                     [](const kernel_step& step) { return step.kernel == "deidentify"; });
}

/// Every slot is taken and the slot table will wake the mailbox (tick_atom)
/// when one frees or a worker joins.
void wait_for_a_slot(mailbox_pointer self, const job_record& job) {
  auto& st = self->state;
  st.waiting_for_slot = true;
  if (!st.slots->any_slots() && !st.said_no_slots) {
    st.said_no_slots = true;
    log::warning(component, "job " + std::to_string(job.id) + " of stream " + job.stream +
                                " waits for a worker: cluster.head_slots is 0 and no worker "
                                "has joined (dcmstreams worker --join)");
  }
}

void start_next(mailbox_pointer self) {
  auto snapshot = self->state.registry->get();
  auto* stream = snapshot->find_by_name(self->state.stream);
  std::size_t concurrency = stream ? static_cast<std::size_t>(stream->concurrency) : 1;
  while (!self->state.paused && !self->state.waiting_for_slot && !self->state.queue.empty() &&
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
    auto plan = plan_for(*stream);
    plan.pseudonyms = self->state.pseudonyms;
    std::optional<placement> where;
    if (auto& slots = self->state.slots) {
      where = slots->take_or_wait(needs_the_head(plan), [mailbox = stream_mailbox_actor{self}] {
        caf::anon_send(mailbox, tick_atom::value);
      });
      if (!where) {
        self->state.queue.push_front(std::move(job));
        wait_for_a_slot(self, self->state.queue.front());
        break;
      }
    }
    job.state = job_state::running;
    job.started = now_ms();
    job.finished = 0;
    job.message.clear();
    job.worker = where ? where->worker : std::string{};
    self->state.said_no_slots = false;
    record(self, job);
    auto cancel = std::make_shared<cancel_token>();
    (*self->state.running)[job.id] = {job, cancel};
    log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream +
                             " starts (" + std::to_string(job.instances) + " instances)" +
                             (job.worker.empty() ? "" : " on worker " + job.worker));
    store_layout layout{self->state.data_dir};
    auto manager = self->state.manager;
    auto slots = self->state.slots;
    // The run blocks (a process, kernels, whole-study I/O, or a worker's
    // run with its transfers): its own thread.
    self->system().spawn<caf::detached>([=](caf::blocking_actor* runner) {
      auto ran = job;
      auto outcome = where && !where->worker.empty()
                         ? run_on_worker(runner, *where, layout, ran, plan, *cancel, *slots)
                         : run_job(layout, ran, plan, *cancel);
      if (where)
        slots->release(*where);
      runner->send(manager, finished_atom::value, ran, outcome);
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
  plan.log_limit_bytes = stream.log_limit_mb << 20;
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
  st.pseudonyms = std::move(settings.pseudonyms);
  st.metrics = settings.metrics;
  st.running = settings.running ? settings.running : std::make_shared<running_jobs>();
  st.slots = std::move(settings.slots);
  st.notifier = std::move(settings.notifier);
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
      [self](tick_atom) {
        self->state.waiting_for_slot = false;
        start_next(self);
      },
      [self](finished_atom, job_record& job, const job_outcome& outcome) {
        self->state.running->erase(job.id);
        if (outcome.state == job_state::queued) {
          // Its worker was lost: the job goes first in line again.
          job.state = job_state::queued;
          job.started = 0;
          job.message = outcome.message;
          record(self, job);
          if (auto* m = self->state.metrics)
            m->jobs_requeued.with({job.stream}).increment();
          self->state.queue.push_front(std::move(job));
          start_next(self);
          return;
        }
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
        notify_ended(self, job);
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

} // namespace dcmstreams
