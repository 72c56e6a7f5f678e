#include "pipeline/routing/routing.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/foundation/pattern.hpp"

#include <regex>

namespace dcmstreams {

namespace {

bool check_regex(json::problems& problems, const std::string& path, const std::string& pattern) {
  auto compiled = compile_pattern(pattern);
  if (!compiled)
    problems.add(path, compiled.error().message);
  return static_cast<bool>(compiled);
}

std::optional<std::string> string_or_number(const json::value& element) {
  if (element.is_string())
    return element.get<std::string>();
  if (element.is_number_integer())
    return element.dump();
  return std::nullopt;
}

void read_which(json::object_reader& reader, route_destination& destination) {
  auto filters = reader.get_array("which");
  if (!filters)
    return;
  std::size_t index = 0;
  for (auto& element : *filters) {
    std::string path = reader.path_of("which") + "[" + std::to_string(index++) + "]";
    if (!element.is_object()) {
      reader.sink().add(path, "must be an object of tag filters such as {\"0008,103e\": \"T1\"}");
      continue;
    }
    tag_filter filter;
    for (auto& [tag, value] : element.items()) {
      if (!value.is_string()) {
        reader.sink().add(path + "." + tag, "must be a regular expression in a string");
        continue;
      }
      auto pattern = value.get<std::string>();
      if (auto problem = check_attribute_name(tag))
        reader.sink().add(path + "." + tag, *problem);
      else if (check_regex(reader.sink(), path + "." + tag, pattern))
        filter.push_back({tag, pattern});
    }
    destination.which.push_back(std::move(filter));
  }
}

std::optional<route_destination>
read_destination(const json::value& element, const std::string& path, json::problems& problems,
                 const std::map<std::string, destination_config>& destinations) {
  route_destination destination;
  if (element.is_string()) {
    auto name = element.get<std::string>();
    auto it = destinations.find(name);
    if (it == destinations.end()) {
      std::string known;
      for (auto& [n, d] : destinations)
        known += (known.empty() ? "" : ", ") + n;
      problems.add(path, "names destination \"" + name +
                             "\", which is not in the node config's \"destinations\"" +
                             (known.empty() ? " (none are defined)" : " (defined: " + known + ")"));
      return std::nullopt;
    }
    destination.named = it->first;
    destination.host = it->second.host;
    destination.port = it->second.port;
    destination.calling_ae = it->second.calling_ae_title;
    destination.called_ae = it->second.ae_title;
    destination.associations = it->second.associations;
    destination.transfer_syntax = it->second.transfer_syntax;
    destination.deidentify = it->second.deidentify;
    return destination;
  }
  if (!element.is_object()) {
    problems.add(path, "must be a destination object {\"IP\", \"PORT\", \"AETitleTo\", ...} or "
                       "the name of a configured destination");
    return std::nullopt;
  }
  json::object_reader reader{element, path, problems};
  reader.reject_unknown_keys({"IP", "PORT", "AETitleSender", "AETitleTo", "which", "break"});
  auto before = problems.messages.size();
  if (auto ip = reader.get_string("IP")) {
    if (*ip != "$me" && *ip != "$caller")
      if (auto problem = check_host(*ip))
        problems.add(path + ".IP", *problem + " (or \"$me\", \"$caller\")");
    destination.host = *ip;
  } else if (!reader.has("IP"))
    problems.add(path, "needs \"IP\", the host to send to");
  if (auto port = reader.get("PORT")) {
    auto text = string_or_number(*port);
    int value = 0;
    try {
      value = text ? std::stoi(*text) : 0;
    } catch (const std::exception&) {
    }
    if (text && *text == "$port")
      destination.default_port = true;
    else if (!text || value < 1 || value > 65535)
      problems.add(reader.path_of("PORT"),
                   "must be a port number between 1 and 65535, or \"$port\"");
    else
      destination.port = static_cast<std::uint16_t>(value);
  } else {
    problems.add(path, "needs \"PORT\"");
  }
  destination.calling_ae = reader.get_string("AETitleSender").value_or("");
  if (auto to = reader.get_string("AETitleTo")) {
    if (auto problem = check_ae_title(*to))
      problems.add(reader.path_of("AETitleTo"), *problem);
    destination.called_ae = *to;
  } else if (!reader.has("AETitleTo")) {
    problems.add(path, "needs \"AETitleTo\", the called AE title of the destination");
  }
  read_which(reader, destination);
  destination.stop = reader.get_flag("break").value_or(false);
  if (problems.messages.size() != before)
    return std::nullopt;
  return destination;
}

} // namespace

result<routing_table> parse_routing(std::string_view text, const std::string& source,
                                    const std::map<std::string, destination_config>& destinations) {
  auto root = json::parse(text, source);
  if (!root)
    return root.error();
  json::problems problems{source, {}};
  if (!root->is_object())
    return failure{ec::invalid_config, source + ": must be an object {\"routing\": [rules...]}"};
  json::object_reader top{*root, "", problems};
  top.reject_unknown_keys({"routing"});
  routing_table table;
  auto rules = top.get_array("routing");
  if (!rules) {
    if (!top.has("routing"))
      problems.add("", "needs \"routing\", a list of rules");
    return failure{ec::invalid_config, problems.report()};
  }
  std::size_t index = 0;
  for (auto& element : *rules) {
    std::string path = "routing[" + std::to_string(index++) + "]";
    if (!element.is_object()) {
      problems.add(path, "must be a rule object");
      continue;
    }
    json::object_reader reader{element, path, problems};
    reader.reject_unknown_keys(
        {"name", "AETitleIn", "AETitleFrom", "status", "RouteDirectory", "send", "break"});
    routing_rule rule;
    rule.name = reader.get_string("name").value_or(path);
    if (auto in = reader.get_string("AETitleIn"))
      if (check_regex(problems, reader.path_of("AETitleIn"), *in))
        rule.called_ae_pattern = *in;
    if (auto from = reader.get_string("AETitleFrom"))
      if (check_regex(problems, reader.path_of("AETitleFrom"), *from))
        rule.calling_ae_pattern = *from;
    if (auto status = reader.get("status")) {
      auto text = string_or_number(*status);
      if (!text || (*text != "0" && *text != "1"))
        problems.add(reader.path_of("status"), "must be 1 (enabled) or 0 (disabled)");
      else
        rule.enabled = *text == "1";
    }
    if (auto directory = reader.get_string("RouteDirectory")) {
      if (*directory != "OUTPUT" && *directory != "INPUT")
        problems.add(reader.path_of("RouteDirectory"), "must be \"OUTPUT\" or \"INPUT\"");
      else
        rule.directory = *directory;
    }
    rule.stop = reader.get_flag("break").value_or(false);
    if (auto send = reader.get_array("send")) {
      std::size_t map_index = 0;
      for (auto& map : *send) {
        std::string map_path = reader.path_of("send") + "[" + std::to_string(map_index++) + "]";
        if (!map.is_object()) {
          problems.add(map_path, "must map an outcome regex to a destination, such as "
                                 "{\"success\": {\"IP\": ...}}");
          continue;
        }
        std::vector<route_choice> choices;
        for (auto& [pattern, choice] : map.items()) {
          std::string choice_path = map_path + ".\"" + pattern + "\"";
          check_regex(problems, choice_path, pattern);
          if (auto destination = read_destination(choice, choice_path, problems, destinations))
            choices.push_back({pattern, *destination});
        }
        rule.send.push_back(std::move(choices));
      }
    }
    table.rules.push_back(std::move(rule));
  }
  if (!problems.empty())
    return failure{ec::invalid_config, problems.report()};
  return table;
}

result<routing_table> load_routing(const std::filesystem::path& path,
                                   const std::map<std::string, destination_config>& destinations) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  return parse_routing(*text, path.string(), destinations);
}

namespace {

// Case-insensitive search, as the old appliance did; an absent pattern matches.
bool matches(const std::string& pattern, const std::string& text) {
  if (pattern.empty())
    return true;
  // parse_routing refuses files with a bad pattern; never false here with a loaded table.
  auto compiled = compile_pattern(pattern);
  return compiled && std::regex_search(text, *compiled);
}

} // namespace

std::vector<planned_send> evaluate_routing(const routing_table& table, const route_context& job,
                                           const std::string& node_ae,
                                           const sending_config& sending) {
  std::vector<planned_send> sends;
  for (auto& rule : table.rules) {
    if (!rule.enabled)
      continue;
    if (!matches(rule.called_ae_pattern, job.called_ae) ||
        !matches(rule.calling_ae_pattern, job.calling_ae))
      continue;
    bool stop = rule.stop;
    for (auto& map : rule.send) {
      // The first key, in document order, that matches the outcome.
      for (auto& choice : map) {
        if (!matches(choice.outcome_pattern, job.outcome))
          continue;
        auto& d = choice.destination;
        planned_send send;
        send.rule = rule.name;
        send.directory = rule.directory;
        send.which = d.which;
        auto& t = send.target;
        t.host = d.host == "$me" ? sending.default_host : d.host == "$caller" ? job.peer : d.host;
        t.port = d.default_port ? sending.default_port : d.port;
        t.called_ae = d.called_ae;
        t.calling_ae = d.calling_ae.empty() ? node_ae : d.calling_ae;
        t.associations = d.associations;
        t.transfer_syntax = d.transfer_syntax;
        t.deidentify = d.deidentify;
        t.name =
            d.named.empty() ? t.called_ae + "@" + t.host + ":" + std::to_string(t.port) : d.named;
        sends.push_back(std::move(send));
        stop = stop || d.stop;
        break;
      }
    }
    if (stop)
      break;
  }
  return sends;
}

bool passes_which(const std::vector<tag_filter>& which,
                  const std::map<std::string, std::string>& attributes) {
  if (which.empty())
    return true;
  for (auto& filter : which) {
    bool all = true;
    for (auto& term : filter)
      if (!matches(term.pattern, attributes.count(term.attribute) ? attributes.at(term.attribute)
                                                                  : std::string()))
        all = false;
    if (all)
      return true;
  }
  return false;
}

} // namespace dcmstreams
