// The cluster's workers as the head knows them (docs/cluster.md).

#include "web/api_context.hpp"
#include "web/handlers.hpp"

namespace dcmstreams::web {

void list_workers(api_context& api, const route_call& call) {
  auto& cluster = api.settings.config.cluster;
  if (!api.backend.cluster) {
    json::value body = {{"cluster", false}, {"workers", json::value::array()}};
    return call.respond(json_response(json::dump(body)));
  }
  api.ask([&api, respond = call.respond, cluster](caf::event_based_actor* self) {
    self->request(api.backend.cluster, actor_timeout, get_atom::value, workers_atom::value)
        .then(
            [respond, cluster](std::vector<worker_status>& workers) {
              auto list = json::value::array();
              for (auto& w : workers)
                list.push_back({
                    {"name", w.info.name},
                    {"state", w.state},
                    {"host", w.info.host},
                    {"pid", w.info.pid},
                    {"version", w.info.version},
                    {"slots", w.info.slots},
                    {"running", w.running},
                    {"joined", iso8601(w.joined)},
                    {"last_answer", iso8601(w.answered)},
                    {"joins", w.joins},
                });
              json::value body = {{"cluster", true},
                                  {"bind", cluster.bind},
                                  {"port", cluster.port},
                                  {"workers", std::move(list)}};
              respond(json_response(json::dump(body)));
            },
            answer_error(respond));
  });
}

} // namespace dcmstreams::web
