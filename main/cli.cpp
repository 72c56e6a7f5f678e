#include "main/cli.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

namespace dcmstreams::cli {

command_line::command_line(std::string command, std::string usage, std::string summary,
                           std::vector<option_spec> options)
    : command_(std::move(command)), usage_(std::move(usage)), summary_(std::move(summary)),
      options_(std::move(options)) {}

std::optional<int> command_line::parse_or_help(int argc, char** argv) {
  if (auto problem = parse(argc, argv, 2)) {
    std::cerr << problem->message << "\n";
    return 2;
  }
  if (wants_help()) {
    std::cout << help();
    return 0;
  }
  return std::nullopt;
}

status command_line::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto spec = std::find_if(options_.begin(), options_.end(),
                             [&](const option_spec& o) { return o.name == name; });
    if (spec == options_.end())
      return failure{ec::invalid_argument, error("unknown option --" + name)};
    if (spec->value_name.empty()) {
      if (inline_value)
        return failure{ec::invalid_argument, error("--" + name + " takes no value")};
      values_[name] = "";
      continue;
    }
    if (inline_value) {
      values_[name] = *inline_value;
    } else if (i + 1 < argc) {
      values_[name] = argv[++i];
    } else {
      return failure{ec::invalid_argument,
                     error("--" + name + " needs a value: --" + name + " " + spec->value_name)};
    }
  }
  return std::nullopt;
}

std::optional<std::string> command_line::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end())
    return std::nullopt;
  return it->second;
}

result<std::int64_t> command_line::integer(const std::string& name, std::int64_t fallback,
                                           std::int64_t min, std::int64_t max) const {
  auto text = value(name);
  if (!text)
    return fallback;
  std::int64_t number = 0;
  std::size_t used = 0;
  try {
    number = std::stoll(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text->size() || number < min || number > max)
    return failure{ec::invalid_argument,
                   error("--" + name + " must be a whole number from " + std::to_string(min) +
                         " to " + std::to_string(max) + ", not '" + *text + "'")};
  return number;
}

std::string command_line::help() const {
  std::ostringstream out;
  out << "usage: dcmstreams " << command_ << " " << usage_ << "\n\n" << summary_ << "\n";
  if (!options_.empty())
    out << "\noptions:\n";
  for (auto& o : options_) {
    std::string left = "  --" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    out << left;
    if (left.size() < 28)
      out << std::string(28 - left.size(), ' ');
    else
      out << "\n" << std::string(28, ' ');
    out << o.help << "\n";
  }
  out << "  --help                    show this text\n";
  return out.str();
}

std::string command_line::error(const std::string& message) const {
  return "dcmstreams " + command_ + ": " + message + " (see dcmstreams " + command_ + " --help)";
}

} // namespace dcmstreams::cli
