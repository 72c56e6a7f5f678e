#pragma once
// http:// and https:// URLs as the node's own HTTP client needs them (a
// stream's notify).

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <string>

namespace dcmstreams {

/// An http:// or https:// URL taken apart.
struct http_url {
  bool tls = false; // https
  std::string host;
  std::uint16_t port = 80;  // 443 for https unless the URL names one
  std::string target = "/"; // path and query
};

/// Parses "http[s]://host[:port][/path]"; the failure says what is wrong.
result<http_url> parse_http_url(const std::string& url);

} // namespace dcmstreams
