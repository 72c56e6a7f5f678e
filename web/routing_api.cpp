// The routing rules: routing.json as it is, and replacing it (checked first).

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/routing/routing.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"

#include <regex>

namespace dcmstreams::web {

namespace {

constexpr const char* component = "web";

/// 422 for a routing.json that does not load: the whole message, and each
/// problem with its place (key path, or line and column of a syntax error).
http_response routing_problem_response(const failure& problem, const std::string& source) {
  static const std::regex syntax{R"(^:(\d+):(\d+): (.*)$)"};
  auto problems = json::value::array();
  std::size_t start = 0;
  while (start < problem.message.size()) {
    auto end = problem.message.find('\n', start);
    if (end == std::string::npos)
      end = problem.message.size();
    std::string line = problem.message.substr(start, end - start);
    start = end + 1;
    if (line.rfind(source, 0) == 0)
      line = line.substr(source.size());
    std::smatch match;
    if (std::regex_match(line, match, syntax)) {
      problems.push_back({{"line", std::stoll(match[1])},
                          {"column", std::stoll(match[2])},
                          {"message", match[3].str()}});
      continue;
    }
    if (line.rfind(": ", 0) == 0)
      line = line.substr(2);
    auto colon = line.find(": ");
    problems.push_back(
        {{"place", colon == std::string::npos ? std::string{} : line.substr(0, colon)},
         {"message", colon == std::string::npos ? line : line.substr(colon + 2)}});
  }
  json::value body = {{"error", problem.message}, {"problems", std::move(problems)}};
  return json_response(json::dump(body), 422);
}

} // namespace

void get_routing(api_context& api, const route_call& call) {
  auto& file = api.settings.config.routing_file;
  if (!std::filesystem::exists(file))
    return call.respond(
        json_response(json::dump({{"routing", json::value::array()}}, true) + "\n"));
  auto text = read_text_file(file);
  if (!text)
    return call.respond(failure_response(text.error()));
  call.respond(json_response(*text));
}

void put_routing(api_context& api, const route_call& call) {
  auto& file = api.settings.config.routing_file;
  auto source = file.filename().string();
  auto& body = call.request.body;
  auto table = parse_routing(body, source, api.settings.config.destinations);
  if (!table)
    return call.respond(routing_problem_response(table.error(), source));
  if (auto problem = write_file_atomically(file, body, true))
    return call.respond(failure_response(*problem));
  // The router notices the new file on its next look (every second); asking
  // it now makes the change take effect before this answer arrives.
  if (api.backend.router)
    caf::anon_send(api.backend.router, tick_atom::value);
  log::info(component,
            "routing.json replaced over HTTP: " + std::to_string(table->rules.size()) + " rules");
  call.respond(json_response(json::dump({{"saved", true}, {"rules", table->rules.size()}})));
}

} // namespace dcmstreams::web
