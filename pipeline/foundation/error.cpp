#include "pipeline/foundation/error.hpp"

namespace dcmstreams {

const char* to_string(ec code) {
  switch (code) {
  case ec::unspecified:
    return "unspecified";
  case ec::invalid_argument:
    return "invalid_argument";
  case ec::invalid_config:
    return "invalid_config";
  case ec::io_error:
    return "io_error";
  case ec::database_error:
    return "database_error";
  case ec::invalid_dataset:
    return "invalid_dataset";
  case ec::missing_attribute:
    return "missing_attribute";
  case ec::out_of_resources:
    return "out_of_resources";
  case ec::unknown_called_ae:
    return "unknown_called_ae";
  case ec::caller_not_allowed:
    return "caller_not_allowed";
  case ec::not_found:
    return "not_found";
  case ec::network_error:
    return "network_error";
  case ec::peer_refused:
    return "peer_refused";
  case ec::unsupported:
    return "unsupported";
  case ec::conflict:
    return "conflict";
  case ec::unavailable:
    return "unavailable";
  }
  return "unknown";
}

} // namespace dcmstreams
