#pragma once
// A C-ECHO verification SCU: the watchdog asks the node's own listener with
// it whether associations are still being answered.

#include <cstdint>
#include <string>

namespace dcmstreams::net {

enum class echo_answer {
  echoed,   // association accepted and C-ECHO answered
  rejected, // the listener answered with an association rejection (busy, not allowed)
  silent,   // no answer within the timeout, or no connection
};

struct echo_result {
  echo_answer answer = echo_answer::silent;
  std::string message; // why, when not echoed
};

/// Opens an association with `called_ae` at host:port, sends one C-ECHO and
/// releases. Every wait (connect, association, response) ends after
/// `timeout_s`.
echo_result echo(const std::string& host, std::uint16_t port, const std::string& calling_ae,
                 const std::string& called_ae, int timeout_s);

} // namespace dcmstreams::net
