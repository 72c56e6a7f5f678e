#pragma once
// The webhook client (pipeline/routing/webhook_client.hpp) with Boost.Beast
// and, for https, OpenSSL through Asio: one connection per POST, a deadline
// on each step.

#include "pipeline/routing/webhook_client.hpp"

namespace dcmstreams::net {

class beast_webhook_client : public webhook_client {
public:
  result<int> post(const std::string& url, const std::string& json, double timeout_s,
                   const std::string& ca_file) override;
};

} // namespace dcmstreams::net
