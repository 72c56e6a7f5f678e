#include "actors/router.hpp"

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/dicom/transcode.hpp"
#include "pipeline/execution/job_runner.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/store.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {
constexpr const char* component = "routing";
constexpr double routing_poll_interval_s = 1.0;
} // namespace

double retry_delay_s(const sending_config& sending, std::int64_t attempt, double jitter) {
  double delay =
      sending.retry_initial_s *
      std::pow(sending.retry_factor, static_cast<double>(std::max<std::int64_t>(0, attempt - 1)));
  return std::min(delay, sending.retry_max_s) * jitter;
}

// -- sender ------------------------------------------------------------------------------

namespace {

using sender_pointer = sender_actor::stateful_pointer<sender_state>;

bool stored(const std::string& state) {
  return state == "sent" || state == "warning";
}

void publish_send(const routing_settings& settings, const send_task& task) {
  if (settings.events)
    settings.events->publish("send", send_json(task));
}

/// Records a send's new state and tells the event feed.
template <class State> void save_send(State& st, const send_task& task) {
  if (auto problem = st.db->update_send(task))
    log::error(component, problem->message);
  publish_send(st.settings, task);
}

void run_send(sender_pointer self, std::int64_t id) {
  auto& st = self->state;
  auto found = st.db->find_send(id);
  if (!found || !*found) {
    log::error(component, "send " + std::to_string(id) + " is not in the database");
    return;
  }
  auto task = **found;
  if (task.state == "done" || task.state == "failed")
    return;
  auto files = st.db->send_files(id);
  if (!files) {
    log::error(component, files.error().message);
    return;
  }
  task.state = "sending";
  ++task.attempts;
  save_send(st, task);

  // The files still to send: never sent, or refused last time. A file that
  // is gone (the job was deleted) cannot be sent again.
  auto scratch = st.settings.data_dir / "sending" / std::to_string(id);
  std::vector<fs::path> paths;
  std::map<std::string, std::string> original_of; // path sent -> path recorded
  std::vector<send_file> missing;
  task.files_sent = 0;
  for (auto& file : *files) {
    if (stored(file.state))
      ++task.files_sent;
    if (stored(file.state) || file.state == "missing")
      continue;
    if (!fs::exists(file.path)) {
      missing.push_back({file.path, "missing", 0, "the file no longer exists"});
      continue;
    }
    fs::path to_send = file.path;
    if (!task.transfer_syntax.empty()) {
      create_directories(scratch, false);
      auto coded = transcode(file.path, scratch / (std::to_string(paths.size()) + ".dcm"),
                             task.transfer_syntax);
      if (coded)
        to_send = *coded;
      else
        log::warning(component, coded.error().message + "; sending it as it is");
    }
    original_of[to_send.string()] = file.path;
    paths.push_back(to_send);
  }
  for (auto& m : missing)
    st.db->update_send_file(id, m);

  std::string last_problem;
  std::mutex problem_mutex; // guards last_problem, task's progress and last_progress
  std::chrono::steady_clock::time_point last_progress{}; // the first file shows at once
  if (!paths.empty()) {
    send_options options;
    options.host = task.host;
    options.port = static_cast<std::uint16_t>(task.port);
    options.called_ae = task.called_ae;
    options.calling_ae = task.calling_ae;
    options.associations = static_cast<int>(task.associations);
    auto on_file = [&](const file_outcome& outcome) {
      send_file progress;
      progress.path = original_of.count(outcome.path) ? original_of[outcome.path] : outcome.path;
      progress.status = outcome.dimse_status;
      progress.message = outcome.message;
      bool warning = outcome.dimse_status == 0x0001 || (outcome.dimse_status & 0xf000) == 0xb000;
      if (outcome.sent && (outcome.dimse_status == 0 || warning))
        progress.state = warning ? "warning" : "sent";
      else if (outcome.sent)
        progress.state = "refused";
      else
        progress.state = "pending"; // not attempted (no association): try again
      if (warning)
        log::warning(component,
                     progress.path + " stored at " + task.destination + " with " + outcome.message);
      // Recorded before the next file goes: a restart sends at most the
      // instances in flight again.
      st.db->update_send_file(id, progress);
      std::lock_guard<std::mutex> guard{problem_mutex};
      if (progress.state != "sent" && progress.state != "warning") {
        last_problem = outcome.message;
        return;
      }
      // The task's own count moves with the files, for the API and the UI's
      // live feed; at most five updates a second.
      ++task.files_sent;
      auto now = std::chrono::steady_clock::now();
      if (now - last_progress >= std::chrono::milliseconds(200)) {
        last_progress = now;
        save_send(st, task);
      }
    };
    auto report = st.client->send(paths, options, on_file);
    if (!report)
      last_problem = report.error().message;
  }
  std::error_code ignored;
  fs::remove_all(scratch, ignored);

  // Count from the database, which now holds every file's last outcome.
  files = st.db->send_files(id);
  std::int64_t sent = 0, refused = 0, pending = 0, gone = 0;
  for (auto& file : *files) {
    if (stored(file.state))
      ++sent;
    else if (file.state == "refused")
      ++refused;
    else if (file.state == "missing")
      ++gone;
    else
      ++pending;
  }
  task.files_sent = sent;
  task.files_failed = refused + gone;
  auto* metrics = st.metrics;
  if (pending == 0 && refused == 0) {
    task.state = gone == 0 ? "done" : "failed";
    task.finished = now_ms();
    task.message = gone == 0 ? std::to_string(sent) + " files stored"
                             : std::to_string(gone) + " files no longer exist";
  } else if (task.attempts >= st.settings.sending.max_attempts) {
    task.state = "failed";
    task.finished = now_ms();
    task.message = std::to_string(pending + refused) + " of " + std::to_string(task.files_total) +
                   " files not stored after " + std::to_string(task.attempts) +
                   " attempts: " + last_problem + " (retry the send when the destination is fixed)";
  } else {
    static thread_local std::mt19937 random{std::random_device{}()};
    double jitter = std::uniform_real_distribution<double>{0.8, 1.2}(random);
    double delay = retry_delay_s(st.settings.sending, task.attempts, jitter);
    task.state = "retrying";
    task.next_attempt = now_ms() + static_cast<epoch_ms>(delay * 1000);
    task.message = std::to_string(pending + refused) + " files not stored yet: " + last_problem;
    self->delayed_send(self, seconds(delay), send_atom::value, id);
    if (metrics)
      metrics->send_retries.with({task.destination}).increment();
    log::warning(component, "send " + std::to_string(id) + " of job " +
                                std::to_string(task.job_id) + " to " + task.destination +
                                ": attempt " + std::to_string(task.attempts) + " left " +
                                std::to_string(pending + refused) + " files unsent (" +
                                last_problem + "); trying again in " +
                                std::to_string(static_cast<int>(delay * 1000)) + " ms");
  }
  save_send(st, task);
  if (task.state == "done" || task.state == "failed") {
    log::info(component, "send " + std::to_string(id) + " of job " + std::to_string(task.job_id) +
                             " to " + task.destination + " " + task.state + ": " + task.message);
    if (metrics) {
      metrics->sends_total.with({task.destination, task.state}).increment();
      metrics->send_queue_depth.with({task.destination}).decrement();
    }
  }
}

} // namespace

sender_actor::behavior_type sender(sender_pointer self, std::string destination,
                                   routing_settings settings, storage_client* client,
                                   node_metrics* metrics) {
  self->state.destination = std::move(destination);
  self->state.settings = std::move(settings);
  self->state.client = client;
  self->state.metrics = metrics;
  auto db = database::open(store_layout{self->state.settings.data_dir}.database_file(), false);
  if (db)
    self->state.db = std::move(*db);
  else
    log::error(component, db.error().message);
  return {
      [self](send_atom, std::int64_t id) {
        if (self->state.db)
          run_send(self, id);
      },
  };
}

// -- router ------------------------------------------------------------------------------

namespace {

using router_pointer = router_actor::stateful_pointer<router_state>;

std::string fingerprint(const fs::path& file) {
  std::error_code error;
  auto size = fs::file_size(file, error);
  if (error)
    return "absent";
  auto time = fs::last_write_time(file, error).time_since_epoch().count();
  return std::to_string(size) + ":" + std::to_string(time);
}

void load_rules(router_pointer self) {
  auto& st = self->state;
  st.fingerprint = fingerprint(st.settings.routing_file);
  auto report = [&](std::vector<std::string> problems) {
    if (st.settings.readiness)
      st.settings.readiness->set("routing", std::move(problems));
  };
  if (st.fingerprint == "absent") {
    auto missing = st.settings.routing_file.string() +
                   " does not exist: results stay in each job's OUTPUT until it is there";
    if (st.table || st.settings.routing_file_named)
      log::warning(component, missing);
    report(st.settings.routing_file_named ? std::vector<std::string>{missing}
                                          : std::vector<std::string>{});
    st.table = routing_table{};
    return;
  }
  auto loaded = load_routing(st.settings.routing_file, st.settings.destinations);
  if (!loaded) {
    auto kept = st.table ? "keeping the last good routing rules until it is fixed"
                         : "no routing rules until it is fixed";
    log::error(component, loaded.error().message + "\n  -> " + kept);
    report({loaded.error().message + "\n  -> " + kept});
    if (st.metrics)
      st.metrics->routing_reloads.with({"invalid"}).increment();
    return;
  }
  report({});
  log::info(component, "loaded " + std::to_string(loaded->rules.size()) + " routing rules from " +
                           st.settings.routing_file.string());
  st.table = std::move(*loaded);
  if (st.metrics)
    st.metrics->routing_reloads.with({"ok"}).increment();
}

/// One sender per destination and way of sending: the key starts with the
/// destination's name.
std::string sender_key(const send_task& task) {
  return task.destination + "|" + task.host + ":" + std::to_string(task.port) + "|" +
         task.called_ae + "|" + task.calling_ae + "|" + task.transfer_syntax + "|" +
         std::to_string(task.associations);
}

std::string destination_of(const std::string& sender_key) {
  return sender_key.substr(0, sender_key.find('|'));
}

sender_actor sender_for(router_pointer self, const send_task& task) {
  auto key = sender_key(task);
  auto& pool = *self->state.senders;
  auto it = pool.find(key);
  if (it != pool.end())
    return it->second;
  auto spawned = self->system().spawn<caf::detached>(sender, task.destination, self->state.settings,
                                                     self->state.client, self->state.metrics);
  // Monitored, not linked: a sender outlives a router that dies.
  self->monitor(spawned);
  pool.emplace(key, spawned);
  return spawned;
}

/// Hands a send to its sender. `queued`: it is already counted in the send
/// queue gauge (its sender died before finishing it).
void dispatch(router_pointer self, const send_task& task, bool queued = false) {
  auto target = sender_for(self, task);
  // Until its sender finishes it (done or failed), the send waits in the queue.
  if (self->state.metrics && !queued)
    self->state.metrics->send_queue_depth.with({task.destination}).increment();
  auto wait = task.next_attempt - now_ms();
  if (task.state == "retrying" && wait > 0)
    self->delayed_send(target, std::chrono::milliseconds(wait), send_atom::value, task.id);
  else
    self->send(target, send_atom::value, task.id);
}

/// A sender died: after a back-off a new one takes its unfinished sends from
/// the database; one that keeps dying takes the router down with it.
void sender_died(router_pointer self, const std::string& key, const caf::error& reason) {
  auto destination = destination_of(key);
  death_notice notice{component, "the sender to " + destination, "sender:" + destination,
                      "a new one takes its sends from the database", "the router stops with it"};
  auto delay = record_death(self->state.sender_restarts[key], notice, reason, self->state.metrics);
  if (!delay) {
    self->quit(reason);
    return;
  }
  self->delayed_send(self, seconds(*delay), recover_atom::value, key);
}

// The DICOM files a send takes: OUTPUT/ (recursively) or INPUT/, then `which`.
std::vector<std::string> files_for(const store_layout& layout, const job_record& job,
                                   const planned_send& plan) {
  std::vector<std::string> files;
  auto root = layout.job_dir(job.id) / plan.directory;
  std::vector<std::string> wanted;
  for (auto& filter : plan.which)
    for (auto& term : filter)
      wanted.push_back(term.attribute);
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file() || !looks_like_dicom(it->path()))
      continue;
    if (!plan.which.empty()) {
      auto attributes = read_attributes(it->path(), wanted);
      if (!attributes || !passes_which(plan.which, *attributes))
        continue;
    }
    files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void route(router_pointer self, const job_record& job) {
  auto& st = self->state;
  // A restarted router routes what the database says is unrouted and may
  // then get the same job by message: this run of it goes out once.
  if (auto stored = st.db->find_job(job.id);
      stored && *stored && (*stored)->routed >= job.finished && job.finished > 0) {
    log::debug(component, "job " + std::to_string(job.id) + " is routed already");
    return;
  }
  store_layout layout{st.settings.data_dir};
  std::string outcome = to_string(job.state);
  if (auto written = read_proc_json(layout.job_dir(job.id) / "proc.json"))
    outcome = written->verdict;
  route_context context{job.called_ae, job.calling_ae, job.peer, outcome};
  auto plans = st.table
                   ? evaluate_routing(*st.table, context, st.settings.node_ae, st.settings.sending)
                   : std::vector<planned_send>{};
  for (auto& plan : plans) {
    auto files = files_for(layout, job, plan);
    if (files.empty()) {
      log::info(component, "rule \"" + plan.rule + "\" matched job " + std::to_string(job.id) +
                               " but its " + plan.directory + " has no files to send to " +
                               plan.target.name);
      continue;
    }
    send_task task;
    task.job_id = job.id;
    task.rule = plan.rule;
    task.destination = plan.target.name;
    task.host = plan.target.host;
    task.port = plan.target.port;
    task.called_ae = plan.target.called_ae;
    task.calling_ae = plan.target.calling_ae;
    task.associations = plan.target.associations;
    task.transfer_syntax = plan.target.transfer_syntax;
    task.created = now_ms();
    auto id = st.db->insert_send(task, files);
    if (!id) {
      log::error(component, id.error().message);
      continue;
    }
    task.id = *id;
    task.files_total = static_cast<std::int64_t>(files.size());
    publish_send(st.settings, task);
    log::info(component, "job " + std::to_string(job.id) + " (" + outcome + "): rule \"" +
                             plan.rule + "\" sends " + std::to_string(files.size()) + " " +
                             plan.directory + " files to " + task.destination + " as send " +
                             std::to_string(task.id));
    dispatch(self, task);
  }
  if (auto problem = st.db->mark_routed(job.id, now_ms()))
    log::error(component, problem->message);
}

} // namespace

router_actor::behavior_type router(router_pointer self, routing_settings settings,
                                   storage_client* client, node_metrics* metrics,
                                   std::shared_ptr<sender_pool> senders) {
  auto& st = self->state;
  st.senders = senders ? std::move(senders) : std::make_shared<sender_pool>();
  st.settings = std::move(settings);
  st.client = client;
  st.metrics = metrics;
  auto db = database::open(store_layout{st.settings.data_dir}.database_file(), false);
  if (!db) {
    log::error(component, db.error().message + "; routing is off");
    return {
        [](route_atom, const job_record&) {},
        [](tick_atom) {},
        [](retry_atom, std::int64_t) -> caf::result<send_task> {
          return make_error(ec::database_error, "routing is off: the database could not open");
        },
        [](get_atom, sends_atom, std::int64_t) { return std::vector<send_task>{}; },
        [](recover_atom, const std::string&) {},
        [](kill_atom, const std::string&) { return false; },
    };
  }
  st.db = std::move(*db);
  load_rules(self);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& pool = *self->state.senders;
    for (auto it = pool.begin(); it != pool.end(); ++it)
      if (caf::actor_cast<caf::actor_addr>(it->second) == msg.source) {
        auto key = it->first;
        pool.erase(it);
        if (msg.reason) // a sender never stops on its own
          sender_died(self, key, msg.reason);
        return;
      }
  });
  // Senders a previous router left are still at work on their sends.
  for (auto& [key, kept] : *st.senders)
    self->monitor(kept);
  // What the last stop (or router) left: sends to resume, finished jobs not yet routed.
  if (auto unfinished = st.db->unfinished_sends()) {
    // The queue gauge counts from the database: a router that died may have
    // counted some of these, or none.
    std::map<std::string, double> waiting;
    for (auto& task : *unfinished)
      waiting[task.destination] += 1;
    if (st.metrics)
      for (auto& [destination, count] : waiting)
        st.metrics->send_queue_depth.with({destination}).set(count);
    std::size_t resumed = 0;
    for (auto& task : *unfinished)
      if (st.senders->count(sender_key(task)) == 0) {
        dispatch(self, task, true);
        ++resumed;
      }
    if (resumed > 0)
      log::info(component, "resuming " + std::to_string(resumed) + " sends");
  }
  if (auto waiting = st.db->jobs_to_route())
    for (auto& job : *waiting)
      route(self, job);
  self->delayed_send(self, seconds(routing_poll_interval_s), tick_atom::value);
  return {
      [self](route_atom, const job_record& job) { route(self, job); },
      [self](kill_atom, const std::string& destination) {
        bool found = false;
        for (auto& [key, sender] : *self->state.senders)
          if (destination_of(key) == destination) {
            log::warning(component, "test hook: killing the sender to " + destination);
            crash_for_test(caf::actor_cast<caf::strong_actor_ptr>(sender), "killed by a test hook");
            found = true;
          }
        return found;
      },
      [self](recover_atom, const std::string& key) {
        auto unfinished = self->state.db->unfinished_sends();
        if (!unfinished) {
          log::error(component, unfinished.error().message);
          return;
        }
        for (auto& task : *unfinished)
          if (sender_key(task) == key)
            dispatch(self, task, true);
      },
      [self](tick_atom) {
        if (fingerprint(self->state.settings.routing_file) != self->state.fingerprint)
          load_rules(self);
        self->delayed_send(self, seconds(routing_poll_interval_s), tick_atom::value);
      },
      [self](retry_atom, std::int64_t id) -> caf::result<send_task> {
        auto found = self->state.db->find_send(id);
        if (!found)
          return make_error(found.error());
        if (!*found)
          return make_error(ec::not_found, "no send " + std::to_string(id));
        auto task = **found;
        if (task.state != "failed")
          return make_error(ec::invalid_argument, "send " + std::to_string(id) + " is " +
                                                      task.state +
                                                      "; only a failed send can be retried");
        task.state = "queued";
        task.attempts = 0;
        task.finished = 0;
        task.next_attempt = 0;
        task.message = "retried on request";
        save_send(self->state, task);
        // Refused files get another chance; missing ones stay missing.
        if (auto files = self->state.db->send_files(id))
          for (auto& file : *files)
            if (file.state == "refused")
              self->state.db->update_send_file(id, {file.path, "pending", 0, ""});
        dispatch(self, task);
        return task;
      },
      [self](get_atom, sends_atom, std::int64_t limit) -> caf::result<std::vector<send_task>> {
        auto sends = self->state.db->recent_sends(limit);
        if (!sends)
          return make_error(sends.error());
        return *sends;
      },
  };
}

} // namespace dcmstreams
