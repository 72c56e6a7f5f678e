#pragma once
// The route table: every HTTP resource the node serves, with its method,
// who may call it, a one-line summary and its handler. docs/http.md's list
// of routes is made from it (`dcmstreams routes`), and a unit test keeps the
// two equal. To add an endpoint: write a handler in the file of its resource
// (web/*_api.cpp, declared in web/handlers.hpp) and add one line to the
// table in web/routes.cpp.

#include "web/auth.hpp"
#include "web/http.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::web {

struct api_context;

/// Who may call a route.
enum class access {
  open,   // anyone, without the Host and cross-site checks (health probes)
  guest,  // anyone the Host and cross-site checks let through (the login, the UI's files)
  viewer, // a logged-in user of any role
  admin,  // a logged-in admin: everything that changes something
};

const char* to_string(access who);

/// One request as a handler gets it.
struct route_call {
  const http_request& request;
  /// The pattern's parameters by name, already checked: {job} and {send} are
  /// whole numbers, {study} a UID, {file...} a path below the UI's folder.
  std::map<std::string, std::string> params;
  const user_session* user = nullptr; // null for open and guest routes
  responder respond;

  const std::string& param(const std::string& name) const { return params.at(name); }
  std::int64_t id(const std::string& name) const { return std::stoll(params.at(name)); }
};

using route_handler = void (*)(api_context& api, const route_call& call);

struct route {
  const char* method;
  /// Segments, each a literal or a parameter: "/api/v1/jobs/{job}/log".
  const char* pattern;
  access who;
  const char* summary;
  route_handler handler;
  /// Served only when the node runs with DCMSTREAMS_TEST_HOOKS=1.
  bool test_hook = false;
};

/// Every route, in the order docs/http.md lists them.
const std::vector<route>& routes();

/// What the table says of a method and path.
struct route_lookup {
  const route* found = nullptr;
  std::map<std::string, std::string> params;
  /// The path names a resource, but not for this method: what it takes.
  std::vector<std::string> allowed;
  /// A parameter that is not what its resource takes ("abc" as a job id):
  /// the answer to give when nothing else matches.
  std::optional<http_response> bad_parameter;
};

route_lookup find_route(const std::string& method, const std::string& path, bool test_hooks);

/// The table as the Markdown list in docs/http.md.
std::string routes_markdown();

} // namespace dcmstreams::web
