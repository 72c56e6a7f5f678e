#pragma once
// The asynchronous HTTP server on Boost.Beast: a session per connection on
// its own strand, kept alive by shared_from_this, with read timeouts, body
// limits and keep-alive; requests go to an http_handler that answers later,
// so no I/O thread ever waits for an actor.

#include "pipeline/foundation/error.hpp"
#include "web/http.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dcmstreams::web {

struct server_settings {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 2813;
  int threads = 2;
  std::size_t body_limit = 1 << 20;                // bytes, for ordinary requests
  std::size_t upload_limit = std::size_t{8} << 30; // for uploads, which go to a file
  /// Requests whose body goes to a file: uploads, the old appliance's
  /// processZip, and paths that start with each of `upload_prefixes` and end
  /// in "/studies" (STOW-RS: /dicomweb/{AE}/studies).
  std::vector<std::string> upload_paths{"/api/v1/upload", "/code/php/processZip.php"};
  std::vector<std::string> upload_prefixes{"/dicomweb/"};
  std::filesystem::path upload_dir; // where upload bodies are written
  int read_timeout_s = 30;
};

class http_server {
public:
  http_server(server_settings settings, http_handler handler);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds and starts the I/O threads. The failure names address and port.
  status start();
  void stop();
  std::uint16_t port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace dcmstreams::web
