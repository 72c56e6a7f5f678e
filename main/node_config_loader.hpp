#pragma once
// The node configuration as `serve` and `check` see it: the file (from
// --config, or ./dcmstreams.json if present, or the defaults) with the
// command-line options on top.

#include "main/cli.hpp"
#include "pipeline/config.hpp"

namespace dcmstreams::cli {

/// The options every command that reads the node configuration takes.
std::vector<option_spec> config_options();
/// Options that override single keys of the configuration (serve only).
std::vector<option_spec> override_options();

result<node_config> load_config(const command_line& args);

} // namespace dcmstreams::cli
