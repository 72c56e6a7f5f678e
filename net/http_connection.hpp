#pragma once
// A connection for the node's own HTTP clients (webhooks, STOW-RS) with
// Boost.Beast: resolve, connect with TCP_NODELAY, and for https a TLS 1.2+
// handshake that checks the server's certificate against the given authority
// (or the system's) and for the URL's host name; then the caller's exchange
// runs on the open stream. Every step has the same deadline. Private to net/.

#include "pipeline/foundation/error.hpp"
#include "pipeline/foundation/http_url.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <functional>
#include <string>

namespace dcmstreams::net {

/// Makes the failure of one step: "URL: STEP HOST:PORT failed: why".
using http_step_failure = std::function<failure(const char*, const boost::beast::error_code&)>;

/// What OpenSSL says beyond Asio's text: the reason a certificate was refused.
inline std::string tls_failure_detail(const boost::beast::error_code& error, SSL* session) {
  std::string text = error.message();
  if (session) {
    auto verdict = SSL_get_verify_result(session);
    if (verdict != X509_V_OK)
      text += " (the certificate: " + std::string(X509_verify_cert_error_string(verdict)) + ")";
  }
  return text;
}

/// Connects to `url` and calls `exchange(stream, timed, deadline, fail)`,
/// where `stream` is the tcp_stream or the TLS stream over it and `timed`
/// the tcp_stream whose expiry bounds each step. `ca_hint` ends the message
/// of a failed handshake when no `ca_file` was given (where to set one).
template <class T, class Exchange>
result<T> with_http_connection(const std::string& url_text, const http_url& url, double timeout_s,
                               const std::string& ca_file, const std::string& ca_hint,
                               Exchange&& exchange) {
  namespace beast = boost::beast;
  namespace asio = boost::asio;
  namespace ssl = asio::ssl;
  asio::io_context io;
  beast::tcp_stream stream{io};
  auto where = url.host + ":" + std::to_string(url.port);
  http_step_failure fail = [&](const char* step, const beast::error_code& error) {
    return failure{ec::network_error,
                   url_text + ": " + step + " " + where + " failed: " + error.message()};
  };
  auto deadline = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timeout_s));
  beast::error_code error;
  asio::ip::tcp::resolver resolver{io};
  auto addresses = resolver.resolve(url.host, std::to_string(url.port), error);
  if (error)
    return fail("resolving", error);
  stream.expires_after(deadline);
  stream.connect(addresses, error);
  if (error)
    return fail("connecting to", error);
  stream.socket().set_option(asio::ip::tcp::no_delay{true}, error);
  if (!url.tls) {
    result<T> answer = exchange(stream, stream, deadline, fail);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, error);
    return answer;
  }

  ssl::context context{ssl::context::tls_client};
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (ca_file.empty())
    context.set_default_verify_paths(error);
  else
    context.load_verify_file(ca_file, error);
  if (error)
    return failure{ec::invalid_config, url_text + ": cannot load the trusted authorities" +
                                           (ca_file.empty() ? "" : " from " + ca_file) + ": " +
                                           error.message()};
  context.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream&> secure{stream, context};
  // OpenSSL checks the name itself, so a mismatch is named as such in the
  // verify result ("hostname mismatch", "IP address mismatch").
  auto* session = secure.native_handle();
  asio::ip::make_address(url.host, error);
  bool is_address = !error;
  bool named = is_address ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), url.host.c_str())
                          : SSL_set1_host(session, url.host.c_str()) &&
                                // Servers behind one address tell their certificates apart by it.
                                SSL_set_tlsext_host_name(session, url.host.c_str());
  if (!named)
    return failure{ec::network_error, url_text + ": cannot ask TLS to check the name " + url.host};
  stream.expires_after(deadline);
  secure.handshake(ssl::stream_base::client, error);
  if (error)
    return failure{ec::network_error, url_text + ": the TLS handshake with " + where +
                                          " failed: " + tls_failure_detail(error, session) +
                                          (ca_file.empty() ? ca_hint : "")};
  result<T> answer = exchange(secure, stream, deadline, fail);
  // A server may close without its own close_notify: the answer is in hand.
  stream.expires_after(deadline);
  secure.shutdown(error);
  return answer;
}

} // namespace dcmstreams::net
