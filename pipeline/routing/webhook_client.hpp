#pragma once
// Telling another system that a job finished (a stream's "notify"): an HTTP
// POST of a JSON body, as the rest of the node sees it. net/ implements it
// with Beast and the node wires it in, so that actors/ never open sockets.

#include "pipeline/foundation/error.hpp"
#include "pipeline/foundation/http_url.hpp"

#include <string>

namespace dcmstreams {

class webhook_client {
public:
  virtual ~webhook_client() = default;
  /// POSTs `json` to `url` and returns the response's status code; fails
  /// when no response came within `timeout_s` (the message says why). An
  /// https server's certificate must chain to `ca_file` (PEM) when one is
  /// given, else to the system's trusted authorities, and name the host.
  virtual result<int> post(const std::string& url, const std::string& json, double timeout_s,
                           const std::string& ca_file) = 0;
};

} // namespace dcmstreams
