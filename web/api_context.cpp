#include "web/api_context.hpp"

#include <unistd.h>

namespace dcmstreams::web {

namespace {

/// Work for the dispatcher actor: a closure that asks actors and answers.
struct dispatch_work {
  std::function<void(caf::event_based_actor*)> run;
};

} // namespace

} // namespace dcmstreams::web

// A closure cannot be serialized; it never leaves this process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<dcmstreams::web::dispatch_work>)

namespace dcmstreams::web {

api_context::api_context(caf::actor_system& sys, api_settings s, api_backend b)
    : system(sys), settings(std::move(s)), backend(std::move(b)), auth(settings.config.web.users),
      layout(settings.config.data_dir), history(backend.counters, layout.database_file(),
                                                settings.config.data_dir / "throughput.json") {
  guard.hostnames = settings.config.web.hostnames;
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0')
    guard.hostnames.emplace_back(name);
  guard.hostnames.push_back(settings.config.web.bind);
  dispatcher = system.spawn([](caf::event_based_actor* self) -> caf::behavior {
    // Anything else is dropped silently: an error sent back to its sender
    // could stop a typed actor that does not expect it.
    self->set_default_handler(caf::drop);
    return {[self](const std::shared_ptr<dispatch_work>& work) { work->run(self); }};
  });
}

void api_context::ask(std::function<void(caf::event_based_actor*)> work) {
  caf::anon_send(dispatcher, std::make_shared<dispatch_work>(dispatch_work{std::move(work)}));
}

unsigned http_status_of(ec code) {
  switch (code) {
  case ec::invalid_argument:
  case ec::invalid_dataset:
  case ec::missing_attribute:
    return 400;
  case ec::not_found:
  case ec::unknown_called_ae:
    return 404;
  case ec::caller_not_allowed:
    return 403;
  case ec::conflict:
    return 409;
  case ec::invalid_config:
    return 422;
  case ec::out_of_resources:
    return 507;
  case ec::network_error:
  case ec::peer_refused:
    return 502;
  case ec::unavailable:
    return 503;
  default:
    return 500;
  }
}

http_response failure_response(const caf::error& error) {
  if (error == caf::sec::request_timeout)
    return error_response(504, "the node did not answer within 30 s; it may be overloaded");
  return error_response(http_status_of(code_of(error)), describe(error));
}

http_response failure_response(const failure& problem) {
  return error_response(http_status_of(problem.code), problem.message);
}

std::function<void(caf::error&)> answer_error(responder respond) {
  return [respond](caf::error& error) { respond(failure_response(error)); };
}

http_response busy(const std::string& doing) {
  auto response = error_response(503, "the node is busy " + doing + "; try again in a second");
  response.headers.push_back({"Retry-After", "1"});
  return response;
}

std::optional<http_response> password_backoff(api_context& api, const std::string& client) {
  auto wait = api.auth.backoff(client);
  if (wait.count() == 0)
    return std::nullopt;
  auto seconds = std::to_string((wait.count() + 999) / 1000);
  auto response = error_response(429, "too many wrong passwords from " + client + "; wait " +
                                          seconds + " s before the next try");
  response.headers.push_back({"Retry-After", seconds});
  return response;
}

std::optional<std::int64_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 18)
    return std::nullopt;
  std::int64_t id = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    id = id * 10 + (c - '0');
  }
  return id;
}

std::string query_value(const http_request& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? std::string{} : it->second;
}

result<std::int64_t> query_number(const http_request& request, const std::string& name,
                                  std::int64_t fallback, std::int64_t min, std::int64_t max) {
  auto text = query_value(request, name);
  if (text.empty())
    return fallback;
  auto number = parse_id(text);
  if (!number || *number < min || *number > max)
    return failure{ec::invalid_argument, "query parameter " + name + "=" + text +
                                             " must be a whole number from " + std::to_string(min) +
                                             " to " + std::to_string(max)};
  return *number;
}

} // namespace dcmstreams::web
