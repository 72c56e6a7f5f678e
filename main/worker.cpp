// `dcmstreams worker`: joins a head (`serve` with cluster.port) and stays
// joined: after its head goes away it joins again, waiting a little longer
// each time (1 s, 2 s ... 5 s). It opens no port (docs/cluster.md).

#include "actors/cluster.hpp"
#include "actors/cluster_worker.hpp"
#include "build_info.hpp"
#include "main/cli.hpp"
#include "main/commands.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/store.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

namespace dcmstreams::commands {

namespace {

constexpr const char* component = "worker";
constexpr std::chrono::seconds longest_wait{5};
// A head answers at once; a connection that looked fine but leads nowhere
// (the middleman's handle of a head that just went away) is given up soon.
constexpr std::chrono::seconds enlist_timeout{3};

std::string host_name() {
  char name[256] = "?";
  ::gethostname(name, sizeof name - 1);
  return name;
}

/// "HOST:PORT" (HOST may be a bracketed IPv6 address).
std::optional<std::pair<std::string, std::uint16_t>> parse_head(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return std::nullopt;
  auto host = text.substr(0, colon);
  if (host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    std::size_t used = 0;
    auto port = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || port == 0 || port > 65535)
      return std::nullopt;
    return std::pair{host, static_cast<std::uint16_t>(port)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace

int worker(int argc, char** argv) {
  cli::command_line args{
      "worker",
      "--join HOST:PORT [--slots N] [--name NAME] [--data DIR] [--certificate F --key F --ca F]",
      "Joins the head node at HOST:PORT (its cluster.port) and runs jobs it hands over.",
      {{"join", "HOST:PORT", "the head's cluster address (required)"},
       {"slots", "N", "jobs this worker runs at a time (default: 1)"},
       {"name", "NAME", "this worker's name at the head (default: the host name)"},
       {"certificate", "FILE",
        "this worker's certificate, signed by the cluster CA (dcmstreams cluster-ca sign); "
        "with --key and --ca: mutual TLS"},
       {"key", "FILE", "the key of --certificate"},
       {"ca", "FILE", "the cluster CA's certificate (ca.pem): the head must show one it signed"},
       {"data", "DIR",
        "where runs keep their inputs and results (default: /var/tmp/dcmstreams-worker-NAME)"},
       {"log-level", "LEVEL", "debug, info, warning or error (default: info)"}}};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  auto join = args.value("join");
  auto head_address = join ? parse_head(*join) : std::nullopt;
  if (!head_address) {
    std::cerr << args.error(join ? "--join " + *join + " is not HOST:PORT"
                                 : "--join HOST:PORT is required")
              << "\n";
    return 2;
  }
  auto slots = args.integer("slots", 1, 1, 1024);
  if (!slots) {
    std::cerr << args.error(slots.error().message) << "\n";
    return 2;
  }
  if (auto level_text = args.value("log-level")) {
    log::level level;
    if (!log::parse_level(*level_text, level)) {
      std::cerr << args.error("--log-level must be debug, info, warning or error") << "\n";
      return 2;
    }
    log::set_level(level);
  }
  auto& [host, port] = *head_address;
  auto where = host + ":" + std::to_string(port);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::atomic<int> stop_signal{0};
  std::thread signal_waiter([&] {
    int received = 0;
    sigwait(&stop_signals, &received);
    stop_signal = received;
  });

  cluster_tls tls;
  tls.certificate = args.value("certificate").value_or("");
  tls.key = args.value("key").value_or("");
  tls.ca = args.value("ca").value_or("");
  if (tls.certificate.empty() != tls.key.empty() || tls.certificate.empty() != tls.ca.empty()) {
    std::cerr << args.error("--certificate, --key and --ca go together") << "\n";
    return 2;
  }
  for (auto* file : {&tls.certificate, &tls.key, &tls.ca}) {
    std::error_code error;
    if (!file->empty() && !std::filesystem::is_regular_file(*file, error)) {
      std::cerr << args.error(file->string() + " is not a file") << "\n";
      return 2;
    }
  }

  caf::actor_system_config actor_config;
  actor_config.set("logger.verbosity", caf::atom("quiet"));
  actor_config.set("scheduler.policy", caf::atom("sharing"));
  configure_cluster(actor_config, tls);
  caf::actor_system system{actor_config};

  cluster_worker_settings settings;
  settings.info.name = args.value("name").value_or(host_name());
  settings.info.host = host_name();
  settings.info.slots = static_cast<std::uint32_t>(*slots);
  settings.info.pid = static_cast<std::uint32_t>(::getpid());
  settings.info.version = build_info::version;
  settings.work_dir = args.value("data").value_or("/var/tmp/dcmstreams-worker-" +
                                                  folder_name_for_ae(settings.info.name));
  // Runs of an earlier worker process here were given up by the head when
  // it lost that worker.
  if (auto problem = create_directories(settings.work_dir, false)) {
    std::cerr << "dcmstreams worker: " << problem->message << " (--data)\n";
    return 2;
  }
  std::error_code error;
  for (auto& entry : std::filesystem::directory_iterator(settings.work_dir, error))
    if (entry.path().filename().string().rfind("run-", 0) == 0)
      std::filesystem::remove_all(entry.path(), error);
  auto info = settings.info;
  auto me = system.spawn(cluster_worker, std::move(settings));
  log::info(component, "dcmstreams " + std::string{build_info::version} + " worker " + info.name +
                           " with " + std::to_string(info.slots) + " slots joins the head at " +
                           where + " (wire version " + wire_version() + ", " +
                           (tls.on() ? "mutual TLS" : "plain TCP") + ")");

  caf::scoped_actor self{system};
  auto wait = std::chrono::seconds(1);
  // Sleeps in short steps so that a stop signal is not kept waiting.
  auto pause = [&](std::chrono::milliseconds how_long) {
    auto until = std::chrono::steady_clock::now() + how_long;
    while (!stop_signal && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  while (!stop_signal) {
    auto head = connect_to_head(system, host, port, tls.on());
    if (!head) {
      log::warning(component, head.error().message + "; trying again in " +
                                  std::to_string(wait.count()) + " s");
      pause(wait);
      wait = std::min(wait * 2, longest_wait);
      continue;
    }
    bool joined = false;
    self->request(*head, enlist_timeout, enlist_atom::value, info, caf::actor_cast<caf::actor>(me))
        .receive(
            [&](double heartbeat_s) {
              joined = true;
              log::info(component, "joined the head at " + where +
                                       "; it asks for a heartbeat every " +
                                       log::seconds_text(heartbeat_s));
            },
            [&](caf::error& e) {
              log::error(component, "the head at " + where +
                                        " refused this worker: " + describe(e) +
                                        "; trying again in " + std::to_string(wait.count()) + " s");
            });
    if (!joined) {
      pause(wait);
      wait = std::min(wait * 2, longest_wait);
      continue;
    }
    wait = std::chrono::seconds(1);
    self->monitor(*head);
    bool head_gone = false;
    while (!stop_signal && !head_gone)
      self->receive(
          [&](caf::down_msg& down) {
            head_gone = true;
            log::warning(component, "lost the head at " + where + " (" + describe(down.reason) +
                                        "); joining again in 1 s");
          },
          caf::after(std::chrono::milliseconds(200)) >> [] {});
    // The middleman forgets the closed connection meanwhile; asking at once
    // may hand back the old head's handle.
    if (head_gone)
      pause(std::chrono::seconds(1));
  }
  log::info(component,
            std::string("stopping on ") + (stop_signal == SIGINT ? "SIGINT" : "SIGTERM"));
  self->send_exit(me, caf::exit_reason::user_shutdown);
  signal_waiter.join();
  return 0;
}

} // namespace dcmstreams::commands
