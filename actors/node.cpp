#include "actors/node.hpp"

#include "actors/assembler.hpp"
#include "actors/job_manager.hpp"
#include "actors/job_store.hpp"
#include "actors/notifier.hpp"
#include "actors/registry_watcher.hpp"
#include "actors/router.hpp"
#include "actors/scrubber.hpp"
#include "actors/supervisor.hpp"
#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

namespace {
constexpr const char* component = "node";
// How often the streams folder is checked for changes.
constexpr double streams_poll_interval_s = 1.0;
} // namespace

result<node_actors> spawn_node(caf::actor_system& system, const node_config& config,
                               std::shared_ptr<database> db, node_metrics& metrics,
                               storage_client& client, event_hub* events,
                               webhook_client* webhooks) {
  node_actors actors;
  actors.registry = std::make_shared<streams::shared_registry>();
  actors.readiness = std::make_shared<readiness_board>();
  load_and_publish(config.streams_dir, *actors.registry, &metrics, actors.readiness.get());

  store_layout layout{config.data_dir};
  journal_settings journal_config;
  journal_config.dir = layout.journal_dir();
  journal_config.segment_bytes = config.storage.journal_segment_mb << 20;
  auto opened = journal::open(journal_config);
  if (!opened)
    return failure{opened.error().code,
                   "cannot open the ingest journal: " + opened.error().message};
  actors.ingest_journal = std::move(*opened);
  actors.backlog =
      std::make_shared<intake_backlog>(config.completion.max_backlog, ingest_wait_for_backlog);
  bool durable = config.storage.sync != sync_mode::none;
  actors.job_store = spawn_supervised<job_store_actor>(
      system, "job_store",
      detached_actor(job_store, job_store_settings{db, config.data_dir, actors.ingest_journal,
                                                   durable, events}),
      &metrics);

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
  routing_settings routing{
      config.ae_title,          config.routing_file, config.data_dir, config.pseudonyms(),
      config.sending,           config.destinations, events,          actors.readiness.get(),
      config.routing_file_named};
  router_settings router_config{routing, &client, &metrics, std::make_shared<sender_pool>()};
  actors.senders = router_config.senders;
  actors.router = spawn_supervised<router_actor>(system, "router",
                                                 detached_actor(router, router_config), &metrics);
  job_manager_settings manager;
  manager.job_store = actors.job_store;
  manager.router = actors.router;
  manager.registry = actors.registry;
  manager.data_dir = config.data_dir;
  manager.pseudonyms = config.pseudonyms();
  if (config.cluster.port != 0)
    actors.slots =
        std::make_shared<slot_table>(config.cluster.head_slots, config.cluster.shared_data);
  manager.slots = actors.slots;
  if (webhooks)
    actors.notifier = spawn_supervised<notifier_actor>(
        system, "notifier",
        detached_actor(notifier,
                       notifier_settings{webhooks, config.data_dir, config.ae_title, &metrics}),
        &metrics);
  manager.notifier = actors.notifier;
  manager.metrics = &metrics;
  manager.history = std::move(history);
  actors.job_manager = spawn_supervised<job_manager_actor>(
      system, "job_manager",
      [manager](caf::actor_system& sys, bool restarted, const caf::actor& supervisor) {
        auto settings = manager;
        settings.restarted = restarted;
        settings.reachable_as = caf::actor_cast<job_manager_actor>(supervisor);
        return caf::actor_cast<caf::actor>(sys.spawn(job_manager, std::move(settings)));
      },
      &metrics);
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

  actors.assembler = spawn_supervised<assembler_actor>(
      system, "assembler",
      [store = actors.job_store, manager = actors.job_manager, completion = config.completion,
       registry = actors.registry, metrics = &metrics, events,
       backlog = actors.backlog](caf::actor_system& sys, bool restarted, const caf::actor&) {
        return caf::actor_cast<caf::actor>(
            sys.spawn(assembler, assembler_settings{store, manager, completion, registry, metrics,
                                                    events, restarted, backlog}));
      },
      &metrics);
  if (!report.pending.empty())
    log::info(component, "rebuilding pending studies from " +
                             std::to_string(report.pending.size()) +
                             " instances left in the incoming folder");
  for (auto& pending : report.pending)
    caf::anon_send(actors.assembler, arrived_atom::value, pending.key, pending.instance);

  actors.watcher = spawn_supervised<registry_actor>(
      system, "streams_watcher",
      detached_actor(registry_watcher,
                     registry_watcher_settings{config.streams_dir, actors.registry,
                                               seconds(streams_poll_interval_s), &metrics,
                                               actors.readiness.get()}),
      &metrics);
  actors.scrubber = spawn_supervised<scrubber_actor>(
      system, "scrubber",
      detached_actor(scrubber,
                     scrubber_settings{config.data_dir, config.storage, &metrics, events}),
      &metrics);
  return actors;
}

void stop_node(caf::actor_system& system, node_actors& actors) {
  stop_actors(system, {caf::actor_cast<caf::actor>(actors.scrubber),
                       caf::actor_cast<caf::actor>(actors.watcher),
                       caf::actor_cast<caf::actor>(actors.assembler),
                       caf::actor_cast<caf::actor>(actors.job_manager),
                       caf::actor_cast<caf::actor>(actors.notifier),
                       caf::actor_cast<caf::actor>(actors.router),
                       caf::actor_cast<caf::actor>(actors.job_store)});
  // Senders are not linked to the router (they outlive its restarts).
  if (actors.senders) {
    std::vector<caf::actor> senders;
    for (auto& [key, sender] : *actors.senders)
      senders.push_back(caf::actor_cast<caf::actor>(sender));
    stop_actors(system, senders);
  }
}

std::map<std::string, caf::actor> node_actors::by_name() const {
  std::map<std::string, caf::actor> named{
      {"job_store", caf::actor_cast<caf::actor>(job_store)},
      {"router", caf::actor_cast<caf::actor>(router)},
      {"job_manager", caf::actor_cast<caf::actor>(job_manager)},
      {"assembler", caf::actor_cast<caf::actor>(assembler)},
      {"scrubber", caf::actor_cast<caf::actor>(scrubber)},
      {"streams_watcher", caf::actor_cast<caf::actor>(watcher)}};
  if (notifier)
    named["notifier"] = caf::actor_cast<caf::actor>(notifier);
  return named;
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
