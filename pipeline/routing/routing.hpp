#pragma once
// routing.json, the old appliance's grammar (DESIGN §5):
//   {"routing": [ {"name", "AETitleIn", "AETitleFrom", "status", "RouteDirectory",
//                  "send": [ {"<outcome regex>": <destination>, ...}, ... ], "break"} ]}
// A destination is inline {"IP", "PORT", "AETitleSender", "AETitleTo", "which",
// "break"} or the name of an entry in the node config's `destinations`.
// The semantics are written down, sentence by sentence, in docs/routing.md.

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/error.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

/// `which`: files are sent if any filter matches; a filter matches when every
/// tag's value matches its regex.
using tag_filter = std::vector<attribute_match>;

struct route_destination {
  std::string named; // a `destinations` entry, or empty for inline
  std::string host;  // may be "$me" (the default host) or "$caller"
  std::uint16_t port = 0;
  bool default_port = false;   // PORT was "$port"
  std::string calling_ae;      // AETitleSender
  std::string called_ae;       // AETitleTo
  int associations = 1;        // a named destination's setting
  std::string transfer_syntax; // a named destination's setting; empty: as stored
  std::string deidentify;      // a named destination's setting (destination_config)
  std::vector<tag_filter> which;
  bool stop = false; // "break" inside the destination
};

struct route_choice {
  std::string outcome_pattern; // regex on proc.json's "success"
  route_destination destination;
};

struct routing_rule {
  std::string name;
  std::string called_ae_pattern;  // AETitleIn
  std::string calling_ae_pattern; // AETitleFrom
  bool enabled = true;            // status != 0
  std::string directory = "OUTPUT";
  std::vector<std::vector<route_choice>> send; // each map keeps document order
  bool stop = false;                           // "break"
};

struct routing_table {
  std::vector<routing_rule> rules;
};

/// Parses routing.json text. Every problem names its place: `routing[2].send[0]."success".PORT`.
/// `destinations` (from the node config) resolves named destinations.
result<routing_table> parse_routing(std::string_view text, const std::string& source,
                                    const std::map<std::string, destination_config>& destinations);
result<routing_table> load_routing(const std::filesystem::path& path,
                                   const std::map<std::string, destination_config>& destinations);

/// What a finished job brings to the rules.
struct route_context {
  std::string called_ae;
  std::string calling_ae;
  std::string peer;    // the calling peer's address, for $caller
  std::string outcome; // proc.json's "success"
};

/// A destination with its placeholders resolved.
struct route_target {
  std::string name; // the `destinations` entry, or "AETitleTo@host:port"
  std::string host;
  std::uint16_t port = 0;
  std::string called_ae;
  std::string calling_ae;
  int associations = 1;
  std::string transfer_syntax;
  std::string deidentify;
};

/// One send a rule asks for.
struct planned_send {
  std::string rule;
  route_target target;
  std::string directory; // "OUTPUT" or "INPUT"
  std::vector<tag_filter> which;
};

/// Applies the rules to a finished job (docs/routing.md). `node_ae` is the
/// calling AE title when a destination names none; `sending` resolves $me
/// and $port.
std::vector<planned_send> evaluate_routing(const routing_table& table, const route_context& job,
                                           const std::string& node_ae,
                                           const sending_config& sending);

/// Whether a file's attributes pass a destination's `which` (an empty list passes).
bool passes_which(const std::vector<tag_filter>& which,
                  const std::map<std::string, std::string>& attributes);

} // namespace dcmstreams
