#include "actors/router.hpp"

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/execution/job_runner.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/store.hpp"

#include <algorithm>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

constexpr const char* component = "routing";
constexpr double routing_poll_interval_s = 1.0;

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
  st.fingerprint = fingerprint(st.settings.routing.routing_file);
  auto report = [&](std::vector<std::string> problems) {
    if (st.settings.routing.readiness)
      st.settings.routing.readiness->set("routing", std::move(problems));
  };
  if (st.fingerprint == "absent") {
    auto missing = st.settings.routing.routing_file.string() +
                   " does not exist: results stay in each job's OUTPUT until it is there";
    if (st.table || st.settings.routing.routing_file_named)
      log::warning(component, missing);
    report(st.settings.routing.routing_file_named ? std::vector<std::string>{missing}
                                                  : std::vector<std::string>{});
    st.table = routing_table{};
    return;
  }
  auto loaded = load_routing(st.settings.routing.routing_file, st.settings.routing.destinations);
  if (!loaded) {
    auto kept = st.table ? "keeping the last good routing rules until it is fixed"
                         : "no routing rules until it is fixed";
    log::error(component, loaded.error().message + "\n  -> " + kept);
    report({loaded.error().message + "\n  -> " + kept});
    if (st.settings.metrics)
      st.settings.metrics->routing_reloads.with({"invalid"}).increment();
    return;
  }
  report({});
  log::info(component, "loaded " + std::to_string(loaded->rules.size()) + " routing rules from " +
                           st.settings.routing.routing_file.string());
  st.table = std::move(*loaded);
  if (st.settings.metrics)
    st.settings.metrics->routing_reloads.with({"ok"}).increment();
}

/// One sender per destination and way of sending: the key starts with the
/// destination's name.
std::string sender_key(const send_task& task) {
  return task.destination + "|" + task.host + ":" + std::to_string(task.port) + "|" +
         task.called_ae + "|" + task.calling_ae + "|" + task.transfer_syntax + "|" +
         task.deidentify + "|" + std::to_string(task.associations);
}

std::string destination_of(const std::string& sender_key) {
  return sender_key.substr(0, sender_key.find('|'));
}

sender_actor sender_for(router_pointer self, const send_task& task) {
  auto key = sender_key(task);
  auto& pool = *self->state.settings.senders;
  auto it = pool.find(key);
  if (it != pool.end())
    return it->second;
  auto& settings = self->state.settings;
  auto spawned = self->system().spawn<caf::detached>(
      sender,
      sender_settings{task.destination, settings.routing, settings.client, settings.metrics});
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
  if (self->state.settings.metrics && !queued)
    self->state.settings.metrics->send_queue_depth.with({task.destination}).increment();
  auto wait = task.next_attempt - now_ms();
  if (task.state == send_state::retrying && wait > 0)
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
  auto delay =
      record_death(self->state.sender_restarts[key], notice, reason, self->state.settings.metrics);
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

/// The send of `plan` for this job, before its files are known.
send_task task_for(const job_record& job, const planned_send& plan) {
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
  task.deidentify = plan.target.deidentify;
  task.created = now_ms();
  return task;
}

/// The send `plan` makes of this job, as it would be recorded, with its
/// files; nothing when the folder has none to send.
std::optional<std::pair<send_task, std::vector<std::string>>>
prepare_send(const store_layout& layout, const job_record& job, const planned_send& plan) {
  auto files = files_for(layout, job, plan);
  if (files.empty())
    return std::nullopt;
  auto task = task_for(job, plan);
  task.files_total = static_cast<std::int64_t>(files.size());
  return std::pair{std::move(task), std::move(files)};
}

/// Records a prepared send and hands it to its sender.
result<send_task> start_send(router_pointer self, send_task task,
                             const std::vector<std::string>& files) {
  auto& st = self->state;
  auto id = st.db->insert_send(task, files);
  if (!id)
    return id.error();
  task.id = *id;
  publish_send(st.settings.routing, task);
  dispatch(self, task);
  return task;
}

/// What the rules make of this job: its outcome, then the plans.
std::vector<planned_send> plans_for(router_pointer self, const store_layout& layout,
                                    const job_record& job, std::string& outcome) {
  auto& st = self->state;
  outcome = to_string(job.state);
  if (auto written = read_proc_json(layout.job_dir(job.id) / "proc.json"))
    outcome = written->verdict;
  route_context context{job.called_ae, job.calling_ae, job.peer, outcome};
  return st.table ? evaluate_routing(*st.table, context, st.settings.routing.node_ae,
                                     st.settings.routing.sending)
                  : std::vector<planned_send>{};
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
  store_layout layout{st.settings.routing.data_dir};
  std::string outcome;
  for (auto& plan : plans_for(self, layout, job, outcome)) {
    auto prepared = prepare_send(layout, job, plan);
    if (!prepared) {
      log::info(component, "rule \"" + plan.rule + "\" matched job " + std::to_string(job.id) +
                               " but its " + plan.directory + " has no files to send to " +
                               plan.target.name);
      continue;
    }
    auto task = start_send(self, std::move(prepared->first), prepared->second);
    if (!task) {
      log::error(component, task.error().message);
      continue;
    }
    log::info(component, "job " + std::to_string(job.id) + " (" + outcome + "): rule \"" +
                             plan.rule + "\" sends " + std::to_string(task->files_total) + " " +
                             plan.directory + " files to " + task->destination + " as send " +
                             std::to_string(task->id));
  }
  if (auto problem = st.db->mark_routed(job.id, now_ms()))
    log::error(component, problem->message);
}

} // namespace

router_actor::behavior_type router(router_pointer self, router_settings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  if (!st.settings.senders)
    st.settings.senders = std::make_shared<sender_pool>();
  auto db = database::open(store_layout{st.settings.routing.data_dir}.database_file(), false);
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
        [](get_atom, route_atom, const job_record&) { return std::vector<send_task>{}; },
        [](send_atom, const job_record&, const std::string&,
           const std::string&) -> caf::result<send_task> {
          return make_error(ec::database_error, "routing is off: the database could not open");
        },
    };
  }
  st.db = std::move(*db);
  load_rules(self);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& pool = *self->state.settings.senders;
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
  for (auto& [key, kept] : *st.settings.senders)
    self->monitor(kept);
  // What the last stop (or router) left: sends to resume, finished jobs not yet routed.
  if (auto unfinished = st.db->unfinished_sends()) {
    // The queue gauge counts from the database: a router that died may have
    // counted some of these, or none.
    std::map<std::string, double> waiting;
    for (auto& task : *unfinished)
      waiting[task.destination] += 1;
    if (st.settings.metrics)
      for (auto& [destination, count] : waiting)
        st.settings.metrics->send_queue_depth.with({destination}).set(count);
    std::size_t resumed = 0;
    for (auto& task : *unfinished)
      if (st.settings.senders->count(sender_key(task)) == 0) {
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
        for (auto& [key, sender] : *self->state.settings.senders)
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
        if (fingerprint(self->state.settings.routing.routing_file) != self->state.fingerprint)
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
        if (task.state != send_state::failed)
          return make_error(ec::invalid_argument, "send " + std::to_string(id) + " is " +
                                                      to_string(task.state) +
                                                      "; only a failed send can be retried");
        task.state = send_state::queued;
        task.attempts = 0;
        task.finished = 0;
        task.next_attempt = 0;
        task.message = "retried on request";
        save_send(*self->state.db, self->state.settings.routing, task);
        // Refused files get another chance; missing ones stay missing.
        if (auto files = self->state.db->send_files(id))
          for (auto& file : *files)
            if (file.state == file_send_state::refused)
              self->state.db->update_send_file(id, {file.path, file_send_state::pending, 0, ""});
        dispatch(self, task);
        return task;
      },
      [self](get_atom, sends_atom, std::int64_t limit) -> caf::result<std::vector<send_task>> {
        auto sends = self->state.db->recent_sends(limit);
        if (!sends)
          return make_error(sends.error());
        return *sends;
      },
      [self](get_atom, route_atom, const job_record& job) {
        store_layout layout{self->state.settings.routing.data_dir};
        std::string outcome;
        std::vector<send_task> would;
        for (auto& plan : plans_for(self, layout, job, outcome)) {
          auto prepared = prepare_send(layout, job, plan);
          if (prepared) {
            would.push_back(std::move(prepared->first));
          } else {
            auto empty = task_for(job, plan); // matched, but nothing to send: said so
            empty.message = "its " + plan.directory + " has no files to send";
            would.push_back(std::move(empty));
          }
        }
        return would;
      },
      [self](send_atom, const job_record& job, const std::string& name,
             const std::string& directory) -> caf::result<send_task> {
        auto& routing = self->state.settings.routing;
        auto it = routing.destinations.find(name);
        if (it == routing.destinations.end())
          return make_error(ec::not_found, "no destination \"" + name +
                                               "\" in the node configuration's destinations");
        if (directory != "INPUT" && directory != "OUTPUT")
          return make_error(ec::invalid_argument,
                            "directory must be INPUT or OUTPUT, not \"" + directory + "\"");
        auto& d = it->second;
        planned_send plan;
        plan.rule = "sent by hand";
        plan.directory = directory;
        plan.target = {d.name.empty() ? name : d.name,
                       d.host,
                       d.port,
                       d.ae_title,
                       d.calling_ae_title.empty() ? routing.node_ae : d.calling_ae_title,
                       d.associations,
                       d.transfer_syntax,
                       d.deidentify};
        store_layout layout{routing.data_dir};
        auto prepared = prepare_send(layout, job, plan);
        if (!prepared)
          return make_error(ec::not_found, "job " + std::to_string(job.id) +
                                               " has no DICOM files in " + directory + " to send");
        auto task = start_send(self, std::move(prepared->first), prepared->second);
        if (!task)
          return make_error(task.error());
        log::info(component, "job " + std::to_string(job.id) + ": " +
                                 std::to_string(task->files_total) + " " + directory +
                                 " files sent by hand to " + task->destination + " as send " +
                                 std::to_string(task->id));
        return *task;
      },
  };
}

} // namespace dcmstreams
