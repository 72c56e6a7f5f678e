#include "actors/node.hpp"

#include "actors/assembler.hpp"
#include "actors/job_manager.hpp"
#include "actors/job_store.hpp"
#include "actors/registry_watcher.hpp"
#include "actors/router.hpp"
#include "actors/scrubber.hpp"
#include "pipeline/log.hpp"

namespace dcmstreams {

namespace {
constexpr const char* component = "node";
// How often the streams folder is checked for changes.
constexpr double streams_poll_interval_s = 1.0;
} // namespace

result<node_actors> spawn_node(caf::actor_system& system, const node_config& config,
                               std::shared_ptr<database> db, node_metrics& metrics,
                               storage_client& client, event_hub* events) {
  node_actors actors;
  actors.registry = std::make_shared<streams::shared_registry>();
  load_and_publish(config.streams_dir, *actors.registry, &metrics);

  store_layout layout{config.data_dir};
  bool durable = config.storage.sync != sync_mode::none;
  actors.job_store = system.spawn<caf::detached>(job_store, std::move(db), layout, durable, events);

  recovery_report report;
  caf::error failed;
  caf::scoped_actor self{system};
  self->request(actors.job_store, caf::infinite, recover_atom::value)
      .receive([&](recovery_report& r) { report = std::move(r); },
               [&](caf::error& e) { failed = std::move(e); });
  if (failed)
    return failure{ec::io_error, "cannot recover the data folder: " + describe(failed)};
  for (auto& job : report.resumed_jobs)
    log::info(component,
              "finished creating job " + std::to_string(job.id) + ", interrupted by the last stop");
  for (auto id : report.undone_jobs)
    log::info(component, "undid the interrupted creation of job " + std::to_string(id) +
                             "; its study is pending again");
  if (report.removed_partial_files > 0)
    log::info(component, "removed " + std::to_string(report.removed_partial_files) +
                             " partly received instances (never acknowledged)");
  for (auto& problem : report.problems)
    log::warning(component, problem);

  // Jobs left queued or running by the last stop run again, in their order;
  // a job that was running starts again from a clean OUTPUT/.
  std::vector<job_record> unfinished;
  std::vector<stream_stats> history;
  self->request(actors.job_store, caf::infinite, get_atom::value, queued_atom::value)
      .receive([&](std::vector<job_record>& jobs) { unfinished = std::move(jobs); },
               [&](caf::error& e) { failed = std::move(e); });
  self->request(actors.job_store, caf::infinite, get_atom::value, stats_atom::value)
      .receive([&](std::vector<stream_stats>& stats) { history = std::move(stats); },
               [&](caf::error& e) { failed = std::move(e); });
  if (failed)
    return failure{ec::database_error, "cannot read the job queue: " + describe(failed)};
  routing_settings routing{config.ae_title, config.routing_file, config.data_dir,
                           config.sending,  config.destinations, events};
  actors.router = system.spawn<caf::detached>(router, routing, &client, &metrics);
  actors.job_manager = system.spawn(job_manager, actors.job_store, actors.router, actors.registry,
                                    config.data_dir, &metrics, std::move(history));
  for (auto& job : unfinished)
    if (job.state == job_state::running) {
      log::info(component, "job " + std::to_string(job.id) + " of stream " + job.stream +
                               " was running when the node stopped; it runs again");
      job.state = job_state::queued;
      job.message = "interrupted by a stop of the node; runs again from a clean OUTPUT";
      self->send(actors.job_store, update_atom::value, job);
    }
  if (!unfinished.empty()) {
    log::info(component, std::to_string(unfinished.size()) + " jobs are queued from before");
    self->send(actors.job_manager, job_atom::value, std::move(unfinished));
  }

  actors.assembler = system.spawn(assembler, actors.job_store, actors.job_manager,
                                  config.completion, actors.registry, &metrics, events);
  if (!report.pending.empty())
    log::info(component, "rebuilding pending studies from " +
                             std::to_string(report.pending.size()) +
                             " instances left in the incoming folder");
  for (auto& pending : report.pending)
    caf::anon_send(actors.assembler, arrived_atom::value, pending.key, pending.instance);

  actors.watcher =
      system.spawn<caf::detached>(registry_watcher, config.streams_dir, actors.registry,
                                  seconds(streams_poll_interval_s), &metrics);
  actors.scrubber =
      system.spawn<caf::detached>(scrubber, config.data_dir, config.storage, &metrics, events);
  return actors;
}

void stop_node(caf::actor_system& system, node_actors& actors) {
  stop_actors(system, {caf::actor_cast<caf::actor>(actors.scrubber),
                       caf::actor_cast<caf::actor>(actors.watcher),
                       caf::actor_cast<caf::actor>(actors.assembler),
                       caf::actor_cast<caf::actor>(actors.job_manager),
                       caf::actor_cast<caf::actor>(actors.router),
                       caf::actor_cast<caf::actor>(actors.job_store)});
}

void stop_actors(caf::actor_system& system, const std::vector<caf::actor>& actors) {
  caf::scoped_actor self{system};
  for (auto& handle : actors) {
    if (!handle)
      continue;
    self->monitor(handle);
    self->send_exit(handle, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
  }
}

} // namespace dcmstreams
