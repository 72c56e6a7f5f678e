#pragma once
// A small blocking HTTP/1.1 client for tests: one request per connection to
// 127.0.0.1, chunked responses decoded, so tests read what a browser or curl
// would.

#include <cstdint>
#include <map>
#include <string>

namespace dcmstreams::fixtures {

struct http_reply {
  int status = 0;                             // 0: no answer (connection refused or broken)
  std::map<std::string, std::string> headers; // names in lower case
  std::string body;
};

http_reply http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body = {},
                        const std::map<std::string, std::string>& headers = {});

inline http_reply http_get(std::uint16_t port, const std::string& target,
                           const std::map<std::string, std::string>& headers = {}) {
  return http_request(port, "GET", target, {}, headers);
}

/// Reads the first `count` events of the event feed (or what came within
/// `timeout_ms`): the raw "event: ...\ndata: ...\n\n" blocks, joined.
std::string read_events(std::uint16_t port, const std::string& target, std::size_t count,
                        int timeout_ms, const std::map<std::string, std::string>& headers = {});

/// The value of one series ("name{label=\"x\"}") in a Prometheus
/// exposition, or -1 when it is absent.
double metric_sample(const std::string& exposition, const std::string& series);

/// The "Basic ..." value of an Authorization header.
std::string basic_auth(const std::string& user, const std::string& password);

} // namespace dcmstreams::fixtures
