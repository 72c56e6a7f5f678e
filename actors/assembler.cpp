#include "actors/assembler.hpp"

#include "pipeline/foundation/log.hpp"

#include <algorithm>

namespace dcmstreams {

namespace {
constexpr const char* component = "assembler";

using self_pointer = assembler_actor::stateful_pointer<assembler_state>;

/// A study group appeared or went: the gauge and the event feed learn the new count.
void update_pending_gauge(self_pointer self) {
  if (self->state.settings.metrics)
    self->state.settings.metrics->studies_pending.with({}).set(
        static_cast<double>(self->state.groups.size()));
  if (self->state.settings.events)
    self->state.settings.events->publish("studies", {{"pending", self->state.groups.size()}});
}

} // namespace

required_set::required_set(const streams::completion_rule& from) : rule(from) {
  if (!rule.modality.empty())
    modality.emplace(rule.modality, std::regex::icase);
  if (!rule.series_description.empty())
    series_description.emplace(rule.series_description, std::regex::icase);
}

bool required_set::matches(const arrived_instance& instance) const {
  return (!modality || std::regex_search(instance.modality, *modality)) &&
         (!series_description ||
          std::regex_search(instance.series_description, *series_description));
}

namespace {

void schedule_check(self_pointer self, const study_key& key, pending_group& group) {
  auto now = self->clock().now();
  auto max_wait = seconds(self->state.settings.defaults.max_wait_s);
  auto due = std::min(group.last_arrival + group.quiet_period, group.first_arrival + max_wait);
  auto delay = due > now ? std::chrono::duration_cast<caf::timespan>(due - now) : caf::timespan{0};
  group.timer_pending = true;
  self->delayed_send(self, delay, tick_atom::value, key);
}

void discard_replaced(self_pointer self) {
  if (self->state.replaced.empty())
    return;
  self->send(self->state.settings.job_store, discard_atom::value, std::move(self->state.replaced));
  self->state.replaced.clear();
}

/// Instances handed to the job store (positive) or answered (negative).
void change_backlog(self_pointer self, std::int64_t instances) {
  auto& backlog = self->state.settings.backlog;
  if (!backlog)
    return;
  if (instances >= 0)
    backlog->add(static_cast<std::uint64_t>(instances));
  else
    backlog->remove(static_cast<std::uint64_t>(-instances));
  if (auto* metrics = self->state.settings.metrics)
    metrics->intake_backlog.with({}).set(static_cast<double>(backlog->size()));
}

// How long, and for how many studies, late instances are known as late.
constexpr auto late_window = std::chrono::hours(24);
constexpr std::size_t late_studies = 10000;

/// The job a study became, for late instances; ignored ones leave it as it was.
void remember_completed(self_pointer self, const completed_study& study,
                        const std::vector<job_record>& jobs) {
  if (jobs.empty() || (study.late_of != 0 && study.late == "ignore"))
    return;
  auto& completed = self->state.completed;
  auto now = self->clock().now();
  for (auto it = completed.begin(); it != completed.end();)
    it = now - it->second.at > late_window ? completed.erase(it) : std::next(it);
  if (completed.size() >= late_studies)
    completed.erase(std::min_element(completed.begin(), completed.end(),
                                     [](auto& a, auto& b) { return a.second.at < b.second.at; }));
  completed[study.key] = {jobs.back().id, now};
}

void complete(self_pointer self, const study_key& key, const char* why) {
  auto it = self->state.groups.find(key);
  if (it == self->state.groups.end())
    return;
  completed_study study;
  study.key = key;
  study.stream = it->second.stream;
  study.first_arrival = it->second.first_arrival_wall;
  study.late_of = it->second.late_of;
  study.late = it->second.late;
  auto last_arrival = it->second.last_arrival;
  for (auto& [sop, instance] : it->second.instances)
    study.instances.push_back(instance);
  self->state.groups.erase(it);
  // Only streams with a late policy need to know later that this was done.
  bool late_matters = false;
  if (self->state.settings.registry) {
    auto snapshot = self->state.settings.registry->get();
    if (auto* stream = snapshot->find_by_name(study.stream)) {
      study.accept = stream->accept;
      study.by_series = stream->group_by == streams::grouping::series;
      late_matters = stream->late != "new_job";
    }
  }
  update_pending_gauge(self);
  log::info(component, key.describe() + " is complete (" + why + "), " +
                           std::to_string(study.instances.size()) + " instances for stream " +
                           study.stream +
                           (study.late_of ? ", late for job " + std::to_string(study.late_of) +
                                                " (late: " + study.late + ")"
                                          : ""));
  // The job store takes messages in order: the study's replaced copies are
  // gone before its job consumes the copies it keeps.
  discard_replaced(self);
  change_backlog(self, static_cast<std::int64_t>(study.instances.size()));
  self->request(self->state.settings.job_store, caf::infinite, create_atom::value, study)
      .then(
          [self, study, last_arrival, late_matters](std::vector<job_record>& jobs) {
            change_backlog(self, -static_cast<std::int64_t>(study.instances.size()));
            if (late_matters)
              remember_completed(self, study, jobs);
            for (auto& job : jobs)
              log::info(component, "job " + std::to_string(job.id) + " " + to_string(job.state) +
                                       " for stream " + job.stream + ": " + study.key.describe() +
                                       ", " + std::to_string(job.instances) + " instances" +
                                       (job.message.empty() ? "" : " (" + job.message + ")"));
            if (auto* m = self->state.settings.metrics) {
              m->studies_completed.with({study.stream}).increment();
              m->jobs_created.with({study.stream}).increment(static_cast<double>(jobs.size()));
              m->completion_delay.with({study.stream})
                  .observe(
                      std::chrono::duration<double>(self->clock().now() - last_arrival).count());
            }
            if (self->state.settings.job_manager)
              self->send(self->state.settings.job_manager, job_atom::value, std::move(jobs));
          },
          [self, study](caf::error& error) {
            change_backlog(self, -static_cast<std::int64_t>(study.instances.size()));
            if (code_of(error) == ec::not_found) {
              log::warning(component, describe(error));
              return;
            }
            // The instances are still pending (in the journal or incoming/):
            // try again after another quiet period.
            log::error(component, "cannot create the job for " + study.key.describe() + ": " +
                                      describe(error) + "; trying again later");
            for (auto& instance : study.instances)
              self->send(self, arrived_atom::value, study.key, instance);
          });
}

/// Counts an instance toward its group's complete_when; whether the
/// required set has arrived now.
bool required_set_arrived(pending_group& group, const arrived_instance& instance) {
  if (!group.required || instance.series_uid.empty() || !group.required->matches(instance))
    return false;
  ++group.required_series[instance.series_uid];
  ++group.required_instances;
  auto& rule = group.required->rule;
  return group.required_series.size() >= static_cast<std::size_t>(rule.series) &&
         group.required_instances >= static_cast<std::uint64_t>(rule.min_instances);
}

/// An instance joins its study's group; the first one opens the group.
void add_instance(self_pointer self, const study_key& key, const arrived_instance& instance) {
  auto [it, created] = self->state.groups.try_emplace(key);
  auto& group = it->second;
  auto now = self->clock().now();
  if (created) {
    group.first_arrival = now;
    group.first_arrival_wall = now_ms();
    group.quiet_period = seconds(self->state.settings.defaults.quiet_period_s);
    group.stream = key.called_ae;
    if (self->state.settings.registry) {
      auto snapshot = self->state.settings.registry->get();
      if (auto* stream = snapshot->find_by_ae(key.called_ae)) {
        group.stream = stream->folder_name;
        if (stream->quiet_period_s)
          group.quiet_period = seconds(*stream->quiet_period_s);
        group.complete_on_release = stream->complete_on_release;
        if (stream->complete_when)
          group.required = std::make_shared<const required_set>(*stream->complete_when);
        if (stream->late != "new_job")
          if (auto done = self->state.completed.find(key); done != self->state.completed.end()) {
            group.late_of = done->second.job;
            group.late = stream->late;
          }
      }
    }
    update_pending_gauge(self);
    log::debug(component, "first instance of " + key.describe());
  }
  group.last_arrival = now;
  group.last_arrival_wall = now_ms();
  auto [entry, added] = group.instances.try_emplace(instance.sop_uid, instance);
  bool arrived = added && required_set_arrived(group, instance);
  if (!added) {
    // The same instance sent again by the same sender for a pending study:
    // the new copy replaces the earlier one, whose journal record goes
    // (within a second, with the others replaced meanwhile).
    auto earlier = std::move(entry->second);
    entry->second = instance;
    if (earlier.record && !(earlier.record == instance.record)) {
      self->state.replaced.push_back(earlier.record);
      if (!self->state.discard_scheduled) {
        self->state.discard_scheduled = true;
        self->delayed_send(self, std::chrono::seconds(1), discard_atom::value);
      }
    }
    if (self->state.settings.metrics)
      self->state.settings.metrics->instances_replaced.with({key.called_ae}).increment();
    log::info(component, "instance " + instance.sop_uid + " of " + key.describe() +
                             " was sent again; the new copy replaces the earlier one");
  }
  if (arrived)
    complete(self, key, "its required set arrived (complete_when)");
  else if (!group.timer_pending)
    schedule_check(self, key, group);
}

/// After a restart the pending studies are rebuilt from incoming/, where every
/// acknowledged instance waits until its study completes. The same instance
/// arriving again by message is the same entry (by SOP Instance UID).
void rebuild_from_incoming(self_pointer self) {
  self->request(self->state.settings.job_store, caf::infinite, get_atom::value, pending_atom::value)
      .then(
          [self](std::vector<recovered_instance>& found) {
            for (auto& pending : found)
              add_instance(self, pending.key, pending.instance);
            log::info(component, "restarted with " + std::to_string(self->state.groups.size()) +
                                     " pending studies (" + std::to_string(found.size()) +
                                     " instances in the incoming folder)");
          },
          [](caf::error& e) {
            log::error(component,
                       "cannot list the incoming folder after a restart: " + describe(e) +
                           "; its studies complete when the node starts again");
          });
}

} // namespace

assembler_actor::behavior_type assembler(self_pointer self, assembler_settings settings) {
  self->state.settings = std::move(settings);
  if (self->state.settings.restarted)
    rebuild_from_incoming(self);
  return {
      [self](arrived_atom, const study_key& key, const arrived_instance& instance) {
        add_instance(self, key, instance);
      },
      [self](arrived_atom, const study_key& key, const arrived_instance& instance,
             std::uint16_t peer_port) {
        add_instance(self, key, instance);
        auto it = self->state.groups.find(key);
        if (it != self->state.groups.end() && it->second.complete_on_release)
          it->second.associations.insert(peer_port);
      },
      [self](released_atom, const std::string& called_ae, const std::string& calling_ae,
             const std::string& peer, std::uint16_t peer_port) {
        // A study sent over parallel associations completes when the last
        // of those that stored instances of it is released.
        std::vector<study_key> released;
        for (auto& [key, group] : self->state.groups)
          if (key.called_ae == called_ae && key.calling_ae == calling_ae && key.peer == peer &&
              group.associations.erase(peer_port) > 0 && group.associations.empty())
            released.push_back(key);
        for (auto& key : released)
          complete(self, key, "its association was released");
      },
      [self](complete_atom, const std::string& study_uid) -> std::uint64_t {
        std::vector<study_key> matching;
        for (auto& [key, group] : self->state.groups)
          if (key.study_uid == study_uid)
            matching.push_back(key);
        for (auto& key : matching)
          complete(self, key, "completion forced");
        return matching.size();
      },
      [self](get_atom, pending_atom) {
        std::vector<pending_study> result;
        for (auto& [key, group] : self->state.groups) {
          pending_study entry;
          entry.key = key;
          entry.stream = group.stream;
          entry.instances = group.instances.size();
          for (auto& [sop, instance] : group.instances)
            entry.bytes += instance.bytes;
          entry.first_arrival = group.first_arrival_wall;
          entry.last_arrival = group.last_arrival_wall;
          auto quiet_ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(group.quiet_period).count();
          auto max_wait_ms =
              static_cast<epoch_ms>(self->state.settings.defaults.max_wait_s * 1000.0);
          entry.completes_by =
              std::min(entry.last_arrival + quiet_ms, entry.first_arrival + max_wait_ms);
          result.push_back(std::move(entry));
        }
        return result;
      },
      [self](discard_atom) {
        self->state.discard_scheduled = false;
        discard_replaced(self);
      },
      [self](tick_atom, const study_key& key) {
        auto it = self->state.groups.find(key);
        if (it == self->state.groups.end())
          return; // completed meanwhile
        auto& group = it->second;
        group.timer_pending = false;
        auto now = self->clock().now();
        bool quiet = now - group.last_arrival >= group.quiet_period;
        bool waited_longest =
            now - group.first_arrival >= seconds(self->state.settings.defaults.max_wait_s);
        auto& backlog = self->state.settings.backlog;
        if (quiet && !waited_longest && backlog && backlog->behind()) {
          // Job creation is behind (completion.max_backlog): the senders'
          // answers are held back, which stretches the pauses between their
          // instances past the quiet period; and a study completed now would
          // only wait in the backlog. The quiet period ends once it caught up.
          group.timer_pending = true;
          self->delayed_send(self, std::min<caf::timespan>(group.quiet_period, seconds(1)),
                             tick_atom::value, key);
          return;
        }
        if (quiet)
          complete(self, key, "quiet period over");
        else if (waited_longest)
          complete(self, key, "maximum wait reached");
        else
          schedule_check(self, key, group);
      },
  };
}

} // namespace dcmstreams
