#pragma once
// DCMTK's own log lines (a data set it cannot parse, an association it
// aborts) go to the node's log as sentences of the component "dcmtk", instead
// of bare "E: ..." lines on standard error that no log reader can place.

namespace dcmstreams {

/// Sends DCMTK's warnings and errors to log:: (warnings as info, errors as
/// warnings: the node says what it did about each in a line of its own).
void route_dcmtk_log_to_node_log();

} // namespace dcmstreams
