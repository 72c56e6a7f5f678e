#pragma once
// http:// URLs as the node's own HTTP client needs them (a stream's notify).

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <string>

namespace dcmstreams {

/// An http:// URL taken apart.
struct http_url {
  std::string host;
  std::uint16_t port = 80;
  std::string target = "/"; // path and query
};

/// Parses "http://host[:port][/path]"; the failure says what is wrong.
/// https is refused for now (put a local relay in front of an https service).
result<http_url> parse_http_url(const std::string& url);

} // namespace dcmstreams
