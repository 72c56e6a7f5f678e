#include "net/webhook_client.hpp"

#include "build_info.hpp"
#include "net/http_connection.hpp"

namespace dcmstreams::net {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Writes the request and reads the answer on a connected stream (plain or
// TLS); the status code, or the step that failed.
template <class Stream>
result<int> exchange(Stream& stream, beast::tcp_stream& timed, const http_url& target,
                     const std::string& json, std::chrono::steady_clock::duration deadline,
                     const http_step_failure& fail) {
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
  return with_http_connection<int>(
      url, *parsed, timeout_s, ca_file,
      "; a server with a private authority needs \"ca\" in the notify entry",
      [&](auto& stream, beast::tcp_stream& timed, auto deadline, const http_step_failure& fail) {
        return exchange(stream, timed, *parsed, json, deadline, fail);
      });
}

} // namespace dcmstreams::net
