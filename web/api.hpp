#pragma once
// The HTTP API (DESIGN §7) and the routes around it: /api/v1/..., the old
// appliance's *.php endpoints, /metrics, /healthz, /readyz and the UI, as the
// route table says (web/routes.cpp). Handlers ask actors through one
// dispatcher actor and answer when they do; no I/O thread waits for an actor,
// and blocking work goes to bounded pools.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "metrics/registry.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/readiness.hpp"
#include "pipeline/jobs/intake_backlog.hpp"
#include "streams/registry.hpp"
#include "web/auth.hpp"
#include "web/http.hpp"

#include <caf/all.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace dcmstreams::web {

/// The actors and shared state the API reads and changes.
struct api_backend {
  job_store_actor job_store;
  job_manager_actor job_manager;
  assembler_actor assembler;
  router_actor router;
  std::shared_ptr<streams::shared_registry> registry;
  metrics::registry* metrics = nullptr;
  event_hub* events = nullptr;
  node_metrics* counters = nullptr; // sampled for /api/v1/throughput; may be null
  /// What /readyz checks beyond the database and disk: "" when ready, else why not.
  std::function<std::string()> listener_problem;
  /// Problems of the streams folder and the routing file; may be null.
  std::shared_ptr<readiness_board> readiness;
  /// The head's side of the cluster; invalid when cluster.port is 0.
  cluster_head_actor cluster;
  /// Test hooks, served under /api/v1/test/ only when set (serve sets them
  /// when DCMSTREAMS_TEST_HOOKS=1): makes the DICOM listener stop answering;
  /// makes a supervised actor (by the name its restarts are counted under)
  /// stop as a crash would.
  std::function<void()> wedge_listener;
  std::map<std::string, caf::actor> crashable;
  /// Where STOW-RS instances small enough for a record become durable, as
  /// C-STORE's do; null: as files in incoming/.
  journal* ingest_journal = nullptr;
  /// Job creation's backlog: STOW-RS and upload answers wait while it is
  /// above completion.max_backlog, as C-STORE's do; may be null.
  intake_backlog* backlog = nullptr;
};

struct api_settings {
  node_config config;
  std::string version;
  epoch_ms started = 0;
};

/// The API: answers requests, asking the actors through one dispatcher actor.
class api_service {
public:
  api_service(caf::actor_system& system, api_settings settings, api_backend backend);
  ~api_service();
  api_service(const api_service&) = delete;
  api_service& operator=(const api_service&) = delete;

  /// The http_handler of the server: call from any thread; answers later.
  void handle(http_request request, responder respond);
  /// Stops the dispatcher (before the actor system goes).
  void stop();

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace dcmstreams::web
