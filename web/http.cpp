#include "web/http.hpp"

#include <algorithm>
#include <cctype>

#include "pipeline/foundation/json.hpp"

#include <cctype>

namespace dcmstreams::web {

std::string lower_case(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string header_value(const http_request& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string{} : it->second;
}

http_response error_response(unsigned status, const std::string& message) {
  return json_response(json::dump({{"error", message}}), status);
}

http_response json_response(std::string json, unsigned status) {
  http_response response;
  response.status = status;
  response.body = std::move(json);
  return response;
}

std::optional<std::string> url_decode(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2])))
        return std::nullopt;
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void parse_target(const std::string& target, std::string& path,
                  std::map<std::string, std::string>& query) {
  auto question = target.find('?');
  path = url_decode(target.substr(0, question)).value_or("");
  if (question == std::string::npos)
    return;
  std::string rest = target.substr(question + 1);
  std::size_t start = 0;
  while (start <= rest.size()) {
    auto end = rest.find('&', start);
    auto pair = rest.substr(start, end - start);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      auto key = url_decode(pair.substr(0, eq));
      auto value = eq == std::string::npos ? std::optional<std::string>{""}
                                           : url_decode(pair.substr(eq + 1));
      if (key && value)
        query[*key] = *value;
    }
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
}

} // namespace dcmstreams::web
