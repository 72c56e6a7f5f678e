// The CSRF and DNS-rebinding guard of the HTTP API, without sockets.

#include "web/request_guard.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams::web;

namespace {

http_request request(std::string method, std::string path,
                     std::map<std::string, std::string> headers) {
  http_request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}

unsigned status_of(const http_request& r, const request_guard_settings& settings = {}) {
  auto refused = guard_request(r, settings);
  return refused ? refused->status : 0;
}

} // namespace

TEST(request_guard, addresses_loopback_names_and_configured_names_are_the_nodes_own) {
  for (std::string host : {"127.0.0.1:2813", "[::1]:2813", "localhost", "LOCALHOST:1",
                           "ui.localhost:2813", "10.1.2.3", "[fe80::1]"})
    EXPECT_EQ(status_of(request("GET", "/api/v1/jobs", {{"host", host}})), 0u) << host;
  EXPECT_EQ(status_of(request("GET", "/", {})), 0u) << "HTTP/1.0 without Host";
  request_guard_settings settings{{"pacs-router.example.org"}};
  EXPECT_EQ(status_of(request("GET", "/", {{"host", "PACS-Router.example.org:2813"}}), settings),
            0u);
  for (std::string host :
       {"evil.example", "evil.example:2813", "localhost.evil.example", "127.0.0.1.nip.io"})
    EXPECT_EQ(status_of(request("GET", "/", {{"host", host}}), settings), 421u) << host;
}

TEST(request_guard, only_changes_from_another_site_are_refused) {
  std::map<std::string, std::string> own{{"host", "127.0.0.1:2813"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    extra.insert(own.begin(), own.end());
    return extra;
  };
  // Reading is fine from anywhere (what a page may read is the browser's CORS business).
  EXPECT_EQ(status_of(request("GET", "/api/v1/jobs", with({{"origin", "http://evil.example"}}))),
            0u);
  EXPECT_EQ(status_of(request("POST", "/api/v1/jobs/1/retry",
                              with({{"origin", "http://127.0.0.1:2813"}}))),
            0u);
  EXPECT_EQ(status_of(request("POST", "/api/v1/jobs/1/retry",
                              with({{"origin", "http://127.0.0.1:9999"}}))),
            403u);
  EXPECT_EQ(status_of(request("DELETE", "/api/v1/jobs/1",
                              with({{"referer", "http://127.0.0.1:2813/#/jobs/1"}}))),
            0u);
  EXPECT_EQ(status_of(request("DELETE", "/api/v1/jobs/1",
                              with({{"referer", "https://evil.example/x?127.0.0.1:2813"}}))),
            403u);
  EXPECT_EQ(status_of(request("GET", "/code/php/deleteStudy.php",
                              with({{"sec-fetch-site", "same-site"}}))),
            403u);
  EXPECT_EQ(
      status_of(request("POST", "/api/v1/jobs/1/retry", with({{"sec-fetch-site", "same-origin"}}))),
      0u);
  EXPECT_EQ(status_of(request("POST", "/api/v1/jobs/1/retry", with({}))), 0u)
      << "curl and the old mb client send neither Origin nor Referer";
}
