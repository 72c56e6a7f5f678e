#include "pipeline/foundation/allowed_callers.hpp"

#include <arpa/inet.h>

namespace dcmstreams {

namespace {

struct caller_rule {
  std::string ae; // empty: any AE
  bool any_address = true;
  std::uint32_t network = 0;
  std::uint32_t mask = 0;
};

std::optional<caller_rule> parse_rule(const std::string& entry) {
  caller_rule rule;
  auto at = entry.find('@');
  rule.ae = entry.substr(0, at);
  if (at == std::string::npos)
    return rule.ae.empty() ? std::nullopt : std::optional<caller_rule>{rule};
  auto address = entry.substr(at + 1);
  int prefix = 32;
  auto slash = address.find('/');
  if (slash != std::string::npos) {
    try {
      std::size_t used = 0;
      prefix = std::stoi(address.substr(slash + 1), &used);
      if (used != address.size() - slash - 1 || prefix < 0 || prefix > 32)
        return std::nullopt;
    } catch (const std::exception&) {
      return std::nullopt;
    }
    address = address.substr(0, slash);
  }
  in_addr parsed{};
  if (inet_pton(AF_INET, address.c_str(), &parsed) != 1)
    return std::nullopt;
  rule.any_address = false;
  rule.mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  rule.network = ntohl(parsed.s_addr) & rule.mask;
  return rule;
}

} // namespace

bool caller_allowed(const std::vector<std::string>& allowed, const std::string& calling_ae,
                    const std::string& peer) {
  if (allowed.empty())
    return true;
  in_addr parsed{};
  bool peer_is_ipv4 = inet_pton(AF_INET, peer.c_str(), &parsed) == 1;
  std::uint32_t peer_address = ntohl(parsed.s_addr);
  for (auto& entry : allowed) {
    auto rule = parse_rule(entry);
    if (!rule)
      continue;
    if (!rule->ae.empty() && rule->ae != calling_ae)
      continue;
    if (!rule->any_address && (!peer_is_ipv4 || (peer_address & rule->mask) != rule->network))
      continue;
    return true;
  }
  return false;
}

std::optional<std::string> check_allowed_callers(const std::vector<std::string>& allowed) {
  for (auto& entry : allowed)
    if (!parse_rule(entry))
      return "\"" + entry +
             "\" is not \"AET\", \"@address\", \"@address/prefix\" or \"AET@address[/prefix]\"";
  return std::nullopt;
}

} // namespace dcmstreams
