#include "net/webhook_client.hpp"

#include "build_info.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>

namespace dcmstreams::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

// What OpenSSL says beyond Asio's text: the reason a certificate was refused.
std::string tls_detail(const beast::error_code& error, SSL* session) {
  std::string text = error.message();
  if (session) {
    auto verdict = SSL_get_verify_result(session);
    if (verdict != X509_V_OK)
      text += " (the certificate: " + std::string(X509_verify_cert_error_string(verdict)) + ")";
  }
  return text;
}

// Writes the request and reads the answer on a connected stream (plain or
// TLS); the status code, or the step that failed.
template <class Stream>
result<int> exchange(Stream& stream, beast::tcp_stream& timed, const http_url& target,
                     const std::string& json, std::chrono::steady_clock::duration deadline,
                     const std::function<failure(const char*, const beast::error_code&)>& fail) {
  http::request<http::string_body> request{http::verb::post, target.target, 11};
  request.set(http::field::host, target.host);
  request.set(http::field::user_agent, std::string{"dcmstreams/"} + build_info::version);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::connection, "close");
  request.body() = json;
  request.prepare_payload();
  beast::error_code error;
  timed.expires_after(deadline);
  http::write(stream, request, error);
  if (error)
    return fail("sending to", error);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> response;
  response.body_limit(1 << 20); // what the other side says is not kept
  timed.expires_after(deadline);
  http::read(stream, buffer, response, error);
  if (error)
    return fail("reading the answer of", error);
  return static_cast<int>(response.get().result_int());
}

} // namespace

result<int> beast_webhook_client::post(const std::string& url, const std::string& json,
                                       double timeout_s, const std::string& ca_file) {
  auto parsed = parse_http_url(url);
  if (!parsed)
    return parsed.error();
  asio::io_context io;
  beast::tcp_stream stream{io};
  auto where = parsed->host + ":" + std::to_string(parsed->port);
  std::function<failure(const char*, const beast::error_code&)> fail =
      [&](const char* step, const beast::error_code& error) {
        return failure{ec::network_error,
                       url + ": " + step + " " + where + " failed: " + error.message()};
      };
  // The deadline covers each step.
  auto deadline = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timeout_s));
  beast::error_code error;
  asio::ip::tcp::resolver resolver{io};
  auto addresses = resolver.resolve(parsed->host, std::to_string(parsed->port), error);
  if (error)
    return fail("resolving", error);
  stream.expires_after(deadline);
  stream.connect(addresses, error);
  if (error)
    return fail("connecting to", error);
  stream.socket().set_option(asio::ip::tcp::no_delay{true}, error);
  if (!parsed->tls) {
    auto answer = exchange(stream, stream, *parsed, json, deadline, fail);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, error);
    return answer;
  }

  // https: TLS 1.2 or newer, the server's certificate checked against the
  // given authority or the system's, and for the host name in the URL.
  ssl::context context{ssl::context::tls_client};
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (ca_file.empty())
    context.set_default_verify_paths(error);
  else
    context.load_verify_file(ca_file, error);
  if (error)
    return failure{ec::invalid_config, url + ": cannot load the trusted authorities" +
                                           (ca_file.empty() ? "" : " from " + ca_file) + ": " +
                                           error.message()};
  context.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream&> secure{stream, context};
  // OpenSSL checks the name itself, so a mismatch is named as such in the
  // verify result ("hostname mismatch", "IP address mismatch").
  auto* session = secure.native_handle();
  asio::ip::make_address(parsed->host, error);
  bool is_address = !error;
  bool named = is_address
                   ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), parsed->host.c_str())
                   : SSL_set1_host(session, parsed->host.c_str()) &&
                         // Servers behind one address tell their certificates apart by it.
                         SSL_set_tlsext_host_name(session, parsed->host.c_str());
  if (!named)
    return failure{ec::network_error, url + ": cannot ask TLS to check the name " + parsed->host};
  stream.expires_after(deadline);
  secure.handshake(ssl::stream_base::client, error);
  if (error)
    return failure{ec::network_error,
                   url + ": the TLS handshake with " + where +
                       " failed: " + tls_detail(error, secure.native_handle()) +
                       (ca_file.empty() ? "; a server with a private authority needs "
                                          "\"ca\" in the notify entry"
                                        : "")};
  auto answer = exchange(secure, stream, *parsed, json, deadline, fail);
  // A server may close without its own close_notify: the answer is in hand.
  stream.expires_after(deadline);
  secure.shutdown(error);
  return answer;
}

} // namespace dcmstreams::net
