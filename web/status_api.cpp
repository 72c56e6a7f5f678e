// Health, readiness, the node's status, its throughput history, Prometheus
// metrics and the live event feed.

#include "pipeline/foundation/files.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"

namespace dcmstreams::web {

namespace {

/// The names of the configured destinations, for "send this job to…".
json::value destination_names(const node_config& config) {
  auto names = json::value::array();
  for (auto& [name, destination] : config.destinations)
    names.push_back(name);
  return names;
}

/// The event feed as a chunked body: a first comment so that clients see
/// the connection is up, then each event as it comes.
class event_stream : public body_stream {
public:
  explicit event_stream(event_hub& hub) : hub_(hub), subscription_(hub.subscribe()) {}
  ~event_stream() override { hub_.unsubscribe(subscription_); }

  void pull(std::function<void(std::optional<std::string>)> next) override {
    if (!greeted_) {
      greeted_ = true;
      next(std::string(": connected\nretry: 2000\n\n"));
      return;
    }
    subscription_->pull(std::move(next));
  }
  void cancel() override { hub_.unsubscribe(subscription_); }

private:
  event_hub& hub_;
  std::shared_ptr<event_subscription> subscription_;
  bool greeted_ = false;
};

} // namespace

void get_health(api_context&, const route_call& call) {
  call.respond(json_response(json::dump({{"status", "ok"}})));
}

void get_ready(api_context& api, const route_call& call) {
  std::vector<std::string> problems;
  if (api.backend.listener_problem) {
    auto problem = api.backend.listener_problem();
    if (!problem.empty())
      problems.push_back(problem);
  }
  if (api.backend.readiness)
    for (auto& problem : api.backend.readiness->problems())
      problems.push_back(problem);
  auto& storage = api.settings.config.storage;
  auto free = free_bytes(api.settings.config.data_dir).value_or(0);
  if (free < storage.reserve_free_mb * 1024 * 1024)
    problems.push_back("the data disk has " + std::to_string(free / (1024 * 1024)) +
                       " MB free, below the reserve of " + std::to_string(storage.reserve_free_mb) +
                       " MB");
  api.ask([&api, problems, respond = call.respond](caf::event_based_actor* self) {
    auto answer = [respond](std::vector<std::string> all) {
      json::value body = {{"ready", all.empty()}, {"problems", all}};
      respond(json_response(json::dump(body), all.empty() ? 200 : 503));
    };
    self->request(api.backend.job_store, std::chrono::seconds(5), ping_atom::value)
        .then([answer, problems](bool) { answer(problems); },
              [answer, problems](caf::error& error) mutable {
                problems.push_back("the database does not take writes: " + describe(error));
                answer(problems);
              });
  });
}

void get_status(api_context& api, const route_call& call) {
  api.ask([&api, respond = call.respond](caf::event_based_actor* self) {
    auto& backend = api.backend;
    self->request(backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
        .then(
            [&api, self, respond](std::vector<stream_stats>& stats) {
              self->request(api.backend.assembler, actor_timeout, get_atom::value,
                            pending_atom::value)
                  .then(
                      [&api, respond, stats](std::vector<pending_study>& pending) {
                        std::uint64_t queued = 0, running = 0;
                        for (auto& s : stats) {
                          queued += s.queued;
                          running += s.running;
                        }
                        auto& config = api.settings.config;
                        auto disk = disk_space_of(config.data_dir).value_or(disk_space{});
                        auto snapshot =
                            api.backend.registry ? api.backend.registry->get() : nullptr;
                        auto problems = api.backend.readiness ? api.backend.readiness->problems()
                                                              : std::vector<std::string>{};
                        json::value body = {
                            {"version", api.settings.version},
                            {"ae_title", config.ae_title},
                            {"started", iso8601(api.settings.started)},
                            {"uptime_s",
                             static_cast<double>(now_ms() - api.settings.started) / 1000.0},
                            {"dicom", {{"bind", config.dicom.bind}, {"port", config.dicom.port}}},
                            {"data_dir", config.data_dir.string()},
                            {"destinations", destination_names(config)},
                            {"problems", problems},
                            {"disk",
                             {{"free_bytes", disk.free},
                              {"total_bytes", disk.total},
                              {"reserve_bytes", config.storage.reserve_free_mb * 1024 * 1024}}},
                            {"streams", snapshot ? snapshot->streams.size() : 0},
                            {"queued", queued},
                            {"running", running},
                            {"pending_studies", pending.size()},
                        };
                        respond(json_response(json::dump(body)));
                      },
                      answer_error(respond));
            },
            answer_error(respond));
  });
}

void get_throughput(api_context& api, const route_call& call) {
  call.respond(json_response(json::dump(api.history.json())));
}

void get_metrics(api_context& api, const route_call& call) {
  http_response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = api.backend.metrics ? api.backend.metrics->expose() : std::string{};
  call.respond(std::move(response));
}

void get_events(api_context& api, const route_call& call) {
  if (!api.backend.events)
    return call.respond(error_response(503, "the event feed is off"));
  http_response response;
  response.content_type = "text/event-stream";
  response.headers.push_back({"Cache-Control", "no-cache"});
  response.stream = std::make_shared<event_stream>(*api.backend.events);
  call.respond(std::move(response));
}

} // namespace dcmstreams::web
