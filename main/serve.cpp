// `dcmstreams serve`: wires the node together and waits for a signal.

#include "actors/cluster.hpp"
#include "actors/cluster_head.hpp"
#include "actors/listener_bridge.hpp"
#include "actors/node.hpp"
#include "actors/node_metrics.hpp"
#include "actors/supervisor.hpp"
#include "actors/watchdog.hpp"
#include "build_info.hpp"
#include "main/commands.hpp"
#include "main/node_config_loader.hpp"
#include "metrics/process_metrics.hpp"
#include "net/dicom_listener.hpp"
#include "net/echo_scu.hpp"
#include "net/storage_scu.hpp"
#include "net/webhook_client.hpp"
#include "pipeline/dicom/codecs.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/foundation/secret.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/store.hpp"
#include "web/api.hpp"
#include "web/auth.hpp"
#include "web/http_server.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include <unistd.h>

namespace dcmstreams::commands {

namespace {

constexpr const char* component = "serve";

int fail(const std::string& message) {
  log::error(component, message);
  return 1;
}

/// Spawns the listener watchdog, or nothing when dicom.watchdog_interval_s is 0.
watchdog_actor spawn_watchdog(caf::actor_system& system, const node_config& config,
                              net::dicom_listener& listener, node_metrics& metrics) {
  if (config.dicom.watchdog_interval_s <= 0)
    return {};
  watchdog_settings settings;
  settings.interval_s = config.dicom.watchdog_interval_s;
  settings.metrics = &metrics;
  auto host = config.dicom.bind == "0.0.0.0" ? std::string{"127.0.0.1"} : config.dicom.bind;
  int timeout_s = std::min(config.dicom.acse_timeout_s, 10);
  settings.probe = [&listener, host, timeout_s, ae = config.ae_title] {
    auto answer = net::echo(host, listener.port(), ae, ae, timeout_s);
    // A rejection (busy, caller not allowed) is an answer: the listener works.
    return answer.answer == net::echo_answer::silent ? answer.message : std::string{};
  };
  settings.restart = [&listener] { return listener.restart(); };
  return spawn_supervised<watchdog_actor>(system, "watchdog",
                                          detached_actor(watchdog, std::move(settings)), &metrics);
}

} // namespace

int serve(int argc, char** argv) {
  auto options = cli::config_options();
  for (auto& o : cli::override_options())
    options.push_back(o);
  cli::command_line args{"serve", "[options]",
                         "Receives studies by C-STORE; the called AE title picks the stream.",
                         options};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  if (!args.positional().empty()) {
    std::cerr << args.error("unexpected argument '" + args.positional().front() + "'") << "\n";
    return 2;
  }
  auto config = cli::load_config(args);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return 2;
  }
  log::level level = log::level::info;
  log::parse_level(config->log_level, level);
  log::set_level(level);
  // Nagle is on in Debian's DCMTK unless this is set; see net/dicom_listener.cpp.
  ::setenv("TCP_NODELAY", "1", 0);
  register_dicom_codecs();

  // Signals are taken by sigwait below; every thread started from here on
  // inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (auto refusals = cli::serve_refusals(*config); !refusals.empty())
    return fail(refusals.front());
  log::info(component, std::string("dcmstreams ") + build_info::version + " starting; data in " +
                           config->data_dir.string() + ", streams in " +
                           config->streams_dir.string());
  store_layout layout{config->data_dir};
  for (auto& dir :
       {layout.incoming_dir(), layout.receive_dir(), layout.store_dir(), layout.jobs_dir()})
    if (auto problem = create_directories(dir, true))
      return fail(problem->message + "; check the data folder (--data DIR)");
  if (auto problem = check_writable(config->data_dir))
    return fail(problem->message +
                "; the node keeps its journal, store, jobs and database there: make it "
                "writable (remount it read-write) and start again");
  // Made now, not by the first job that needs it: a folder that cannot hold
  // it, or a configured file that is missing, is said at once.
  if (auto secret =
          load_secret(config->pseudonyms().key_file, config->deidentify_secret_file.empty());
      !secret)
    return fail(secret.error().message + " (deidentify.secret_file)");
  auto opened = database::open(layout.database_file());
  if (!opened)
    return fail(opened.error().message);
  std::shared_ptr<database> db = std::move(*opened);

  metrics::registry registry;
  node_metrics metrics{registry};
  metrics::register_process_metrics(registry);
  registry.add_collector([&metrics, data = config->data_dir] {
    if (auto free = free_bytes(data))
      metrics.disk_free.with({}).set(static_cast<double>(*free));
  });

  caf::actor_system_config actor_config;
  actor_config.set("scheduler.max-threads",
                   std::max<std::size_t>(2, std::thread::hardware_concurrency()));
  actor_config.set("logger.verbosity", caf::atom("quiet"));
  // Work stealing polls idle workers with short sleeps, which costs a core
  // on small machines while associations need it; a shared queue with a
  // condition variable wakes workers only for messages.
  actor_config.set("scheduler.policy", caf::atom("sharing"));
  bool cluster_on = config->cluster.port != 0;
  if (cluster_on)
    configure_cluster(actor_config, config->cluster.tls);
  // Senders use the client until the actor system has stopped them all.
  net::node_storage_client client;
  net::beast_webhook_client webhooks;
  caf::actor_system system{actor_config};

  event_hub events;
  auto actors = spawn_node(system, *config, db, metrics, client, &events, &webhooks);
  if (!actors)
    return fail(actors.error().message);
  registry.add_collector([&metrics, journal = actors->ingest_journal] {
    auto usage = journal->current_usage();
    metrics.journal_records.with({}).follow_total(static_cast<double>(usage.appended));
    metrics.journal_flushes.with({}).follow_total(static_cast<double>(usage.flushes));
    metrics.journal_segments.with({"in_use"}).set(static_cast<double>(usage.segments));
    metrics.journal_segments.with({"free"}).set(static_cast<double>(usage.free_segments));
    metrics.journal_live.with({}).set(static_cast<double>(usage.live_records));
  });
  // Supervisors restart their actors; one that gives up (an actor in a crash
  // loop) stops the node with exit status 1, and systemd starts it again
  // (Restart=always), its state back from the database and data folder.
  std::atomic<bool> an_actor_died{false};
  auto stop_when_given_up = [&an_actor_died](const std::string& name, const caf::actor& handle) {
    handle->attach_functor([name, &an_actor_died](const caf::error& reason) {
      if (!reason || reason == caf::make_error(caf::exit_reason::user_shutdown))
        return;
      log::error(component, "the supervisor of the " + name + " actor gave up (" +
                                describe(reason) +
                                "); stopping the node so that it is started again with its "
                                "state from the database (systemd: Restart=always)");
      an_actor_died = true;
      ::kill(::getpid(), SIGTERM);
    });
  };
  auto supervised = actors->by_name();
  for (auto& [name, handle] : supervised)
    stop_when_given_up(name, handle);

  cluster_head_actor cluster;
  if (cluster_on) {
    cluster =
        system.spawn(cluster_head, cluster_head_settings{config->cluster, &metrics, actors->slots});
    auto port = publish_cluster_head(system, cluster, config->cluster);
    if (!port) {
      stop_actors(system, {caf::actor_cast<caf::actor>(cluster)});
      stop_node(system, *actors);
      return fail(port.error().message);
    }
    auto& tls = config->cluster.tls;
    log::info(component, "workers join on " + config->cluster.bind + ":" + std::to_string(*port) +
                             (tls.on() ? " over mutual TLS (CA " + tls.ca.string() + ")"
                                       : std::string{" over plain TCP"}) +
                             " (dcmstreams worker --join " + config->cluster.bind + ":" +
                             std::to_string(*port) +
                             (tls.on() ? " --certificate … --key … --ca …" : "") + ")");
  }

  listener_bridge bridge{actors->registry, actors->assembler, metrics, config->ae_title,
                         actors->backlog};
  net::listener_config listener_settings;
  listener_settings.dicom = config->dicom;
  listener_settings.data_dir = config->data_dir;
  listener_settings.sync = config->storage.sync;
  listener_settings.reserve_free_bytes = config->storage.reserve_free_mb * 1024 * 1024;
  listener_settings.ingest_journal = actors->ingest_journal.get();
  // Plain and TLS associations share dicom.max_associations.
  listener_settings.associations = std::make_shared<std::atomic<std::size_t>>(0);
  net::dicom_listener listener{listener_settings, bridge};
  std::unique_ptr<net::dicom_listener> tls_listener;
  if (config->dicom.tls) {
    auto tls_settings = listener_settings;
    tls_settings.over_tls = true;
    tls_listener = std::make_unique<net::dicom_listener>(tls_settings, bridge);
  }
  auto stop_listeners = [&] {
    listener.stop();
    if (tls_listener)
      tls_listener->stop();
  };
  if (auto problem = listener.start();
      problem || (tls_listener && (problem = tls_listener->start()))) {
    stop_listeners();
    stop_actors(system, {caf::actor_cast<caf::actor>(cluster)});
    stop_node(system, *actors);
    return fail(problem->message);
  }

  web::api_settings api_settings{*config, build_info::version, now_ms()};
  web::api_backend backend{actors->job_store,
                           actors->job_manager,
                           actors->assembler,
                           actors->router,
                           actors->registry,
                           &registry,
                           &events,
                           &metrics,
                           [&listener] {
                             return listener.port() ? std::string{}
                                                    : std::string{"the DICOM listener is down"};
                           },
                           actors->readiness,
                           cluster,
                           {},
                           {}};
  backend.ingest_journal = actors->ingest_journal.get();
  backend.backlog = actors->backlog.get();
  // Faults for the supervision tests; never set in production.
  if (auto* hooks = std::getenv("DCMSTREAMS_TEST_HOOKS"); hooks && std::string{hooks} == "1") {
    log::warning(component, "test hooks are on (DCMSTREAMS_TEST_HOOKS=1): POST /api/v1/test/...");
    backend.wedge_listener = [&listener] { listener.wedge_for_test(); };
    backend.crashable = supervised;
  }
  web::api_service api{system, api_settings, backend};
  web::server_settings web_settings;
  web_settings.bind = config->web.bind;
  web_settings.port = config->web.port;
  web_settings.read_timeout_s = config->web.read_timeout_s;
  web_settings.upload_dir = layout.receive_dir();
  web::http_server web_server{web_settings,
                              [&api](web::http_request request, web::responder respond) {
                                api.handle(std::move(request), std::move(respond));
                              }};
  if (auto problem = web_server.start()) {
    stop_listeners();
    api.stop();
    stop_actors(system, {caf::actor_cast<caf::actor>(cluster)});
    stop_node(system, *actors);
    return fail(problem->message);
  }
  auto watchdog = spawn_watchdog(system, *config, listener, metrics);
  if (watchdog)
    stop_when_given_up("watchdog", caf::actor_cast<caf::actor>(watchdog));
  log::info(
      component,
      "ready: send studies to an AE title of a stream on port " + std::to_string(listener.port()) +
          (tls_listener ? " (TLS: " + std::to_string(tls_listener->port()) + ")" : std::string{}) +
          "; web UI on http://" + config->web.bind + ":" + std::to_string(web_server.port()) + "/");

  int received = 0;
  sigwait(&stop_signals, &received);
  log::info(component, std::string("stopping on ") + (received == SIGINT ? "SIGINT" : "SIGTERM"));
  stop_actors(system,
              {caf::actor_cast<caf::actor>(watchdog), caf::actor_cast<caf::actor>(cluster)});
  web_server.stop();
  api.stop();
  stop_listeners();
  stop_node(system, *actors);
  log::info(component, "stopped");
  return an_actor_died ? 1 : 0;
}

} // namespace dcmstreams::commands
