#include "net/webhook_client.hpp"

#include "build_info.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace dcmstreams::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

result<int> beast_webhook_client::post(const std::string& url, const std::string& json,
                                       double timeout_s) {
  auto parsed = parse_http_url(url);
  if (!parsed)
    return parsed.error();
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::error_code error;
  auto where = parsed->host + ":" + std::to_string(parsed->port);
  auto fail = [&](const char* step) {
    return failure{ec::network_error,
                   url + ": " + step + " " + where + " failed: " + error.message()};
  };
  // The deadline covers each step; the steps together stay under twice it.
  auto deadline = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timeout_s));
  asio::ip::tcp::resolver resolver{io};
  auto addresses = resolver.resolve(parsed->host, std::to_string(parsed->port), error);
  if (error)
    return fail("resolving");
  stream.expires_after(deadline);
  stream.connect(addresses, error);
  if (error)
    return fail("connecting to");
  stream.socket().set_option(asio::ip::tcp::no_delay{true}, error);
  http::request<http::string_body> request{http::verb::post, parsed->target, 11};
  request.set(http::field::host, parsed->host);
  request.set(http::field::user_agent, std::string{"dcmstreams/"} + build_info::version);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::connection, "close");
  request.body() = json;
  request.prepare_payload();
  stream.expires_after(deadline);
  http::write(stream, request, error);
  if (error)
    return fail("sending to");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> response;
  response.body_limit(1 << 20); // what the other side says is not kept
  stream.expires_after(deadline);
  http::read(stream, buffer, response, error);
  if (error)
    return fail("reading the answer of");
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, error);
  return static_cast<int>(response.get().result_int());
}

} // namespace dcmstreams::net
