#include "web/api.hpp"

#include "pipeline/foundation/log.hpp"
#include "web/api_context.hpp"
#include "web/routes.hpp"

namespace dcmstreams::web {

namespace {

constexpr const char* component = "web";

http_response unauthorized(const std::string& path) {
  auto response = error_response(401, "log in first: POST /api/v1/login, or HTTP Basic");
  // Programs (Prometheus, curl, the old mb client) answer a Basic challenge;
  // the UI shows its own form instead of the browser's dialog.
  if (path.rfind("/api/", 0) != 0)
    response.headers.push_back({"WWW-Authenticate", "Basic realm=\"dcmstreams\""});
  return response;
}

/// The answer when the table has no route for the method and path.
http_response no_route(const http_request& request, route_lookup& lookup) {
  const auto& path = request.path;
  if (!lookup.allowed.empty()) {
    std::string allow;
    for (auto& method : lookup.allowed)
      allow += (allow.empty() ? "" : ", ") + method;
    auto response =
        error_response(405, "no " + request.method + " " + path + "; it takes " + allow);
    response.headers.push_back({"Allow", allow});
    return response;
  }
  if (lookup.bad_parameter)
    return std::move(*lookup.bad_parameter);
  if (path.rfind("/api/v1/", 0) == 0)
    return error_response(404, "no " + request.method + " " + path + "; see docs/http.md");
  return error_response(404, "no such resource: " + path + "; the API is under /api/v1/");
}

/// Runs a route for a known user, if the user's role may.
void run_as(api_context& api, const route& r, const route_call& call) {
  if (r.who == access::admin && call.user->role != "admin")
    return call.respond(error_response(403, "user " + call.user->name + " (" + call.user->role +
                                                ") may look but not change; ask an admin"));
  r.handler(api, call);
}

} // namespace

struct api_service::impl {
  api_context context;

  impl(caf::actor_system& system, api_settings settings, api_backend backend)
      : context(system, std::move(settings), std::move(backend)) {}

  void handle(const http_request& request, const responder& respond) {
    bool test_hooks = static_cast<bool>(context.backend.wedge_listener);
    auto lookup = find_route(request.method, request.path, test_hooks);
    auto* found = lookup.found;
    route_call call{request, lookup.params, nullptr, respond};
    // Health needs no login and no Host check: load balancers and supervisors ask it.
    if (found && found->who == access::open)
      return found->handler(context, call);
    if (auto refused = guard_request(request, context.guard))
      return respond(std::move(*refused));
    if (found && found->who == access::guest)
      return found->handler(context, call);
    auto who = context.auth.identify_quickly(request);
    if (who.user) {
      call.user = &*who.user;
      if (!found)
        return respond(no_route(request, lookup));
      return run_as(context, *found, call);
    }
    if (!who.check)
      return respond(unauthorized(request.path));
    // A password to check: slow on purpose, so on the password pool, and only
    // for a client that has not just sent wrong ones.
    if (auto refused = password_backoff(context, request.remote))
      return respond(std::move(*refused));
    bool queued = context.password_pool.try_post(
        [this, request, respond, found, lookup, check = std::move(*who.check)]() mutable {
          auto user = context.auth.check_password(check, request.remote);
          if (!user)
            return respond(unauthorized(request.path));
          if (!found)
            return respond(no_route(request, lookup));
          route_call call{request, std::move(lookup.params), &*user, respond};
          run_as(context, *found, call);
        });
    if (!queued)
      respond(busy("checking too many passwords at once"));
  }
};

api_service::api_service(caf::actor_system& system, api_settings settings, api_backend backend)
    : impl_(std::make_shared<impl>(system, std::move(settings), std::move(backend))) {}

api_service::~api_service() {
  stop();
}

void api_service::handle(http_request request, responder respond) {
  auto fallback = respond;
  try {
    impl_->handle(request, respond);
  } catch (const std::exception& e) {
    // A handler bug must not take the server down; the client learns of it.
    log::error(component, std::string("request failed: ") + e.what());
    fallback(error_response(500, std::string("the request failed: ") + e.what()));
  }
}

void api_service::stop() {
  impl_->context.history.stop();
  if (impl_->context.dispatcher) {
    caf::anon_send_exit(impl_->context.dispatcher, caf::exit_reason::user_shutdown);
    impl_->context.dispatcher = nullptr;
  }
}

} // namespace dcmstreams::web
