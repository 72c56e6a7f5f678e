#pragma once
// HTTP requests and responses as the node's handlers see them: plain structs,
// no sockets, so that handlers are functions unit tests call directly.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::web {

struct http_request {
  std::string method;                         // "GET", "POST", ...
  std::string target;                         // as sent: "/api/v1/jobs?state=failed"
  std::string path;                           // decoded, without the query
  std::map<std::string, std::string> query;   // decoded
  std::map<std::string, std::string> headers; // names in lower case
  std::string body;
  std::string body_file; // large uploads: the body is in this file
  std::string remote;    // peer address
};

/// A response body produced piece by piece (zip downloads, the event feed).
/// `pull` is called when the previous piece was written; it answers, now or
/// later and from any thread, with the next piece or nothing at the end.
class body_stream {
public:
  virtual ~body_stream() = default;
  virtual void pull(std::function<void(std::optional<std::string>)> next) = 0;
  /// The client went away: stop producing.
  virtual void cancel() {}
};

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<body_stream> stream; // set: the body comes from here, chunked
};

using responder = std::function<void(http_response)>;
/// Handles a request; calls `respond` exactly once, now or later, from any thread.
using http_handler = std::function<void(http_request, responder)>;

/// `text` with ASCII letters in lower case (header names, media types, hosts).
std::string lower_case(std::string text);
/// The value of header `name` (lower case), or "" when the request has none.
std::string header_value(const http_request& request, const std::string& name);

/// {"error": "..."} with the status.
http_response error_response(unsigned status, const std::string& message);
/// A JSON body with the status.
http_response json_response(std::string json, unsigned status = 200);

/// Splits "/a/b?x=1&y=%20z" into the decoded path and query.
void parse_target(const std::string& target, std::string& path,
                  std::map<std::string, std::string>& query);
/// Decodes %XX and '+'; nothing if the encoding is broken.
std::optional<std::string> url_decode(const std::string& text);

} // namespace dcmstreams::web
