#pragma once
// Refuses requests that a browser makes on behalf of another site (CSRF) and
// requests whose Host is a name that is not this node's (DNS rebinding):
// with the default loopback mode there is no login, so the browser's own
// checks are the only line a hostile page meets. Socket-free, like the
// handlers: unit tests call it directly.

#include "web/http.hpp"

#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::web {

struct request_guard_settings {
  /// Names (besides loopback names and address literals) by which users reach
  /// the node: web.hostnames, the machine's host name, web.bind.
  std::vector<std::string> hostnames;
};

/// Whether the request changes something: any method but GET, HEAD and
/// OPTIONS, and the old appliance's GET endpoints that delete.
bool changes_state(const http_request& request);

/// The refusal for a request from a foreign site or through a foreign name
/// (403 or 421, JSON), or nothing when it may go on.
std::optional<http_response> guard_request(const http_request& request,
                                           const request_guard_settings& settings);

} // namespace dcmstreams::web
