// Faults the supervision tests inject into a running node. Routed only when
// the node runs with DCMSTREAMS_TEST_HOOKS=1 (serve sets the backend's hooks).

#include "pipeline/foundation/log.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"

namespace dcmstreams::web {

namespace {

/// The answer to a test hook that kills an actor: `problem` when there was
/// none to kill.
auto killed_or(unsigned status, std::string problem, responder respond) {
  return [status, problem = std::move(problem), respond = std::move(respond)](bool killed) {
    if (!killed)
      return respond(error_response(status, problem));
    respond(json_response(json::dump({{"killed", true}})));
  };
}

} // namespace

void wedge_listener(api_context& api, const route_call& call) {
  api.backend.wedge_listener();
  call.respond(json_response(json::dump({{"wedged", true}})));
}

void kill_actor(api_context& api, const route_call& call) {
  auto name = call.param("name");
  auto found = api.backend.crashable.find(name);
  if (found == api.backend.crashable.end())
    return call.respond(error_response(404, "no actor " + name));
  // Its supervisor crashes it; there is none to crash while it restarts.
  api.ask([supervisor = found->second, name, respond = call.respond](caf::event_based_actor* self) {
    self->request(supervisor, actor_timeout, crash_atom::value)
        .then(killed_or(409, "the " + name + " actor is restarting", respond),
              answer_error(respond));
  });
}

void kill_sender(api_context& api, const route_call& call) {
  api.ask([&api, destination = call.param("name"),
           respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.router, actor_timeout, kill_atom::value, destination)
        .then(killed_or(404, "no sender to " + destination, respond), answer_error(respond));
  });
}

void kill_mailbox(api_context& api, const route_call& call) {
  api.ask(
      [&api, stream = call.param("name"), respond = call.respond](caf::event_based_actor* self) {
        self->request(api.backend.job_manager, actor_timeout, kill_atom::value, stream)
            .then(killed_or(404, "stream " + stream + " has no mailbox", respond),
                  answer_error(respond));
      });
}

void stall_job_store(api_context& api, const route_call& call) {
  double seconds = 0;
  try {
    seconds = std::stod(call.param("seconds"));
  } catch (const std::exception&) {
  }
  if (!(seconds > 0 && seconds <= 600))
    return call.respond(error_response(400, "seconds: a number above 0 and at most 600"));
  caf::anon_send(api.backend.job_store, pause_atom::value, seconds);
  call.respond(json_response(json::dump({{"stalled_s", seconds}})));
}

} // namespace dcmstreams::web
