// Logging in and out, who is logged in, and the UI's files.

#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/ui_assets.hpp"

namespace dcmstreams::web {

void get_ui_file(api_context&, const route_call& call) {
  const auto& path = call.request.path;
  auto* asset = find_ui_asset(path == "/" ? "/ui/index.html" : path);
  if (!asset)
    return call.respond(error_response(404, "no such page: " + path));
  http_response response;
  response.content_type = std::string(asset->content_type);
  response.body = std::string(asset->body);
  response.headers.push_back({"Cache-Control", "no-cache"});
  call.respond(std::move(response));
}

void log_in(api_context& api, const route_call& call) {
  auto body = json::parse(call.request.body, "the login request");
  if (!body)
    return call.respond(error_response(400, body.error().message));
  json::problems ignored;
  json::object_reader reader{*body, "", ignored};
  auto name = reader.get_string("name").value_or("");
  auto password = reader.get_string("password").value_or("");
  if (!api.auth.required())
    return call.respond(json_response(json::dump({{"name", "local"}, {"role", "admin"}})));
  if (auto refused = password_backoff(api, call.request.remote))
    return call.respond(std::move(*refused));
  // Slow on purpose (argon2id), so on the password pool.
  bool queued = api.password_pool.try_post([&api, name, password, client = call.request.remote,
                                            respond = call.respond] {
    auto token = api.auth.log_in(name, password, client);
    if (!token)
      return respond(error_response(401, "wrong user name or password"));
    http_response response = json_response(json::dump({{"name", name}}));
    response.headers.push_back({"Set-Cookie", std::string(authenticator::cookie_name) + "=" +
                                                  *token + "; Path=/; HttpOnly; SameSite=Strict"});
    respond(std::move(response));
  });
  if (!queued)
    call.respond(busy("checking too many passwords at once"));
}

void log_out(api_context& api, const route_call& call) {
  api.auth.log_out(call.request);
  http_response response = json_response(json::dump({{"logged_out", true}}));
  response.headers.push_back({"Set-Cookie", std::string(authenticator::cookie_name) +
                                                "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"});
  call.respond(std::move(response));
}

void get_whoami(api_context& api, const route_call& call) {
  json::value body = {{"name", call.user->name},
                      {"role", call.user->role},
                      {"login_required", api.auth.required()}};
  call.respond(json_response(json::dump(body)));
}

} // namespace dcmstreams::web
