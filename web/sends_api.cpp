// Sends: the recent ones, one with each file's outcome, and a retry.

#include "pipeline/jobs/views.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"

namespace dcmstreams::web {

void list_sends(api_context& api, const route_call& call) {
  auto limit = query_number(call.request, "limit", 100, 1, 1000);
  if (!limit)
    return call.respond(failure_response(limit.error()));
  api.ask([&api, limit = *limit, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.router, actor_timeout, get_atom::value, sends_atom::value, limit)
        .then(
            [respond](std::vector<send_task>& sends) {
              auto list = json::value::array();
              for (auto& s : sends)
                list.push_back(send_view(s));
              respond(json_response(json::dump({{"sends", std::move(list)}})));
            },
            answer_error(respond));
  });
}

void get_send(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("send"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, send_atom::value, id)
        .then(
            [respond](send_detail& detail) {
              auto body = send_view(detail.task);
              auto files = json::value::array();
              for (auto& f : detail.files)
                files.push_back(send_file_view(f));
              body["files"] = std::move(files);
              respond(json_response(json::dump(body)));
            },
            answer_error(respond));
  });
}

void retry_send(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("send"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.router, actor_timeout, retry_atom::value, id)
        .then([respond](send_task& task) { respond(json_response(json::dump(send_view(task)))); },
              answer_error(respond));
  });
}

} // namespace dcmstreams::web
