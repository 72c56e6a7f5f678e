#include "pipeline/foundation/http_url.hpp"

#include <cctype>

namespace dcmstreams {

result<http_url> parse_http_url(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return failure{ec::invalid_argument, "\"" + url + "\" " + why};
  };
  http_url parsed;
  parsed.tls = url.rfind("https://", 0) == 0;
  if (!parsed.tls && url.rfind("http://", 0) != 0)
    return bad("is not an http:// or https:// URL");
  if (parsed.tls)
    parsed.port = 443;
  auto rest = url.substr(parsed.tls ? 8 : 7);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (slash != std::string::npos)
    parsed.target = rest.substr(slash);
  if (authority.find('@') != std::string::npos)
    return bad("has a user name in it; put credentials in the path or query instead");
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    auto digits = authority.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string::npos || std::stoul(digits) == 0 ||
        std::stoul(digits) > 65535)
      return bad("has no valid port after the colon");
    parsed.port = static_cast<std::uint16_t>(std::stoul(digits));
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
    authority = authority.substr(1, authority.size() - 2);
  if (authority.empty())
    return bad("has no host");
  for (unsigned char c : authority)
    if (!std::isalnum(c) && c != '.' && c != '-' && c != ':')
      return bad("has a host with a character a host name cannot have");
  for (unsigned char c : parsed.target)
    if (c <= ' ' || c == 0x7f)
      return bad("has a space or control character in its path");
  parsed.host = authority;
  return parsed;
}

} // namespace dcmstreams
