#pragma once
// The webhook client (pipeline/routing/webhook_client.hpp) with Boost.Beast:
// one connection per POST, a deadline over all of it.

#include "pipeline/routing/webhook_client.hpp"

namespace dcmstreams::net {

class beast_webhook_client : public webhook_client {
public:
  result<int> post(const std::string& url, const std::string& json, double timeout_s) override;
};

} // namespace dcmstreams::net
