#pragma once
// The node configuration as `serve` and `check` see it: the file (from
// --config, or ./dcmstreams.json if present, or the defaults) with the
// command-line options on top.

#include "main/cli.hpp"
#include "pipeline/foundation/config.hpp"

namespace dcmstreams::cli {

/// The options every command that reads the node configuration takes.
std::vector<option_spec> config_options();
/// Options that override single keys of the configuration (serve only).
std::vector<option_spec> override_options();

result<node_config> load_config(const command_line& args);

/// What makes `serve` refuse a configuration that parses: a web UI reachable
/// from other machines without users, a data folder that is a file. `check`
/// reports the same, in the same words.
std::vector<std::string> serve_refusals(const node_config& config);

} // namespace dcmstreams::cli
