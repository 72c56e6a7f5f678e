// `dcmstreams check`: validates the configuration, every stream folder and the
// routing file, and names the file, the place and the fix for every problem.

#include "main/cli.hpp"
#include "main/commands.hpp"
#include "main/node_config_loader.hpp"
#include "pipeline/routing/routing.hpp"
#include "streams/registry.hpp"

#include <filesystem>
#include <iostream>

namespace dcmstreams::commands {

int check(int argc, char** argv) {
  cli::command_line args{"check", "[options]",
                         "Validates the node configuration, every stream folder and the routing\n"
                         "file. Exits 1 and names each problem if anything is wrong.",
                         cli::config_options()};
  if (auto exit_code = args.parse_or_help(argc, argv))
    return *exit_code;
  auto config = cli::load_config(args);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return 1;
  }
  int problems = 0;
  auto refusals = cli::serve_refusals(*config);
  for (auto& refusal : refusals)
    std::cerr << refusal << "\n";
  problems += static_cast<int>(refusals.size());
  if (refusals.empty())
    std::cout << "config: "
              << (config->source.empty() ? std::string("built-in defaults")
                                         : config->source.string())
              << ": ok\n";

  auto streams = streams::load_registry(config->streams_dir);
  for (auto& stream : streams.streams) {
    std::cout << "stream " << stream.folder_name << ": ok, AE title " << stream.ae_title
              << (stream.enabled ? "" : " (disabled)") << "\n";
    for (auto& note : stream.notes)
      std::cout << "  note: " << note << "\n";
  }
  for (auto& problem : streams.problems) {
    std::cerr << problem << "\n";
    ++problems;
  }

  std::error_code error;
  bool routing_named = args.has("routing") || !config->routing_file.empty();
  if (std::filesystem::exists(config->routing_file, error)) {
    auto routing = load_routing(config->routing_file, config->destinations);
    if (routing) {
      std::cout << "routing: " << config->routing_file.string() << ": ok, " << routing->rules.size()
                << " rules\n";
    } else {
      std::cerr << routing.error().message << "\n";
      ++problems;
    }
  } else if (args.has("routing")) {
    std::cerr << config->routing_file.string()
              << ": the routing file does not exist; create it or drop --routing\n";
    ++problems;
  } else if (routing_named) {
    std::cout << "routing: " << config->routing_file.string()
              << " does not exist: results stay in each job's OUTPUT folder\n";
  }
  if (problems > 0) {
    std::cerr << "check: " << problems << (problems == 1 ? " problem" : " problems") << "\n";
    return 1;
  }
  std::cout << "check: everything is valid\n";
  return 0;
}

} // namespace dcmstreams::commands
