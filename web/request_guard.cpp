#include "web/request_guard.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace dcmstreams::web {

namespace {

/// "host[:port]" of an absolute URL ("http://a.example:2813/x" gives
/// "a.example:2813"); empty for anything else ("null", a relative URL).
std::string authority_of_url(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return {};
  auto start = scheme_end + 3;
  auto end = url.find_first_of("/?#", start);
  return lower_case(url.substr(start, end == std::string::npos ? std::string::npos : end - start));
}

/// The host of a Host header value, without port or brackets.
std::string host_part(const std::string& authority) {
  if (!authority.empty() && authority.front() == '[')
    return authority.substr(1, authority.find(']') - 1);
  auto colon = authority.rfind(':');
  return colon == std::string::npos ? authority : authority.substr(0, colon);
}

bool is_address_literal(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// A name that only ever resolves to this machine, or an address: a page that
// an attacker serves under such a name is this node itself, so no DNS
// rebinding can make a foreign page same-origin with it.
bool is_own_name(const std::string& host, const request_guard_settings& settings) {
  if (host == "localhost" || (host.size() > 10 && host.rfind(".localhost") == host.size() - 10))
    return true;
  if (is_address_literal(host))
    return true;
  return std::any_of(settings.hostnames.begin(), settings.hostnames.end(),
                     [&](const std::string& name) { return lower_case(name) == host; });
}

http_response refusal(unsigned status, const std::string& message) {
  return error_response(status, message);
}

} // namespace

bool changes_state(const http_request& request) {
  if (request.method != "GET" && request.method != "HEAD" && request.method != "OPTIONS")
    return true;
  return request.path == "/code/php/deleteStudy.php";
}

std::optional<http_response> guard_request(const http_request& request,
                                           const request_guard_settings& settings) {
  auto host_header = lower_case(header_value(request, "host"));
  // HTTP/1.0 clients may send no Host; they are not browsers.
  if (!host_header.empty() && !is_own_name(host_part(host_header), settings))
    return refusal(421, "Host \"" + host_header +
                            "\" is not a name of this node; reach it by its address, a loopback "
                            "name or a name listed in web.hostnames");
  if (!changes_state(request))
    return std::nullopt;
  // Browsers say where a request comes from: Sec-Fetch-Site on every request
  // (even with referrers switched off), Origin on every POST, Referer mostly.
  auto site = lower_case(header_value(request, "sec-fetch-site"));
  if (!site.empty() && site != "same-origin" && site != "none")
    return refusal(403, "a request from another site (Sec-Fetch-Site: " + site +
                            ") may not change anything on this node");
  auto origin = header_value(request, "origin");
  if (!origin.empty()) {
    if (authority_of_url(origin) != host_header)
      return refusal(403, "a request from " + origin +
                              " may not change anything on this node; use its own pages");
    return std::nullopt;
  }
  auto referer = header_value(request, "referer");
  if (!referer.empty() && authority_of_url(referer) != host_header)
    return refusal(403, "a request from the page " + referer +
                            " may not change anything on this node; use its own pages");
  return std::nullopt;
}

} // namespace dcmstreams::web
