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
  /// when no response came within `timeout_s` (the message says why).
  virtual result<int> post(const std::string& url, const std::string& json, double timeout_s) = 0;
};

} // namespace dcmstreams
