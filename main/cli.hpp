#pragma once
// A small command-line parser: `--name value`, `--name=value` and flags, with
// errors that name the option and say what is expected.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::cli {

struct option_spec {
  std::string name;       // without the leading dashes
  std::string value_name; // empty for a flag
  std::string help;
};

class command_line {
public:
  command_line(std::string command, std::string usage, std::string summary,
               std::vector<option_spec> options);

  /// Parses argv[first..argc); positional arguments are kept in order.
  status parse(int argc, char** argv, int first);
  /// Parses the arguments after the command; prints the problem (exit code 2)
  /// or, for --help, the help (exit code 0). Nothing: go on.
  std::optional<int> parse_or_help(int argc, char** argv);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> value(const std::string& name) const;
  /// The option's value as a whole number in [min, max]; `fallback` if absent.
  result<std::int64_t> integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                               std::int64_t max) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool wants_help() const { return help_; }
  std::string help() const;
  /// "dcmstreams <command>: <message> (see dcmstreams <command> --help)"
  std::string error(const std::string& message) const;

private:
  std::string command_;
  std::string usage_;
  std::string summary_;
  std::vector<option_spec> options_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

} // namespace dcmstreams::cli
