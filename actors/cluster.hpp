#pragma once
// What head and workers share (docs/cluster.md): CAF's middleman, set up the
// same way on both sides, with the wire version as its application
// identifier, so that the handshake itself refuses a peer of another version.

#include "actors/actors.hpp"
#include "pipeline/foundation/config.hpp"

#include <cstdint>
#include <string>

namespace dcmstreams {

/// Changes whenever a message between head and worker changes.
constexpr const char* cluster_wire_version = "dcmstreams-cluster-4";

/// The wire version this process speaks: cluster_wire_version, or with
/// DCMSTREAMS_TEST_HOOKS=1 the value of DCMSTREAMS_TEST_WIRE_VERSION (tests
/// of the refusal).
std::string wire_version();

/// Loads the middleman (and with `tls` on, CAF's OpenSSL module with the
/// certificate, key and CA) and announces the cluster's message types.
void configure_cluster(caf::actor_system_config& config, const cluster_tls& tls);

/// actors/openssl_error_queue.cpp: whether the OpenSSL functions CAF calls
/// start with an empty error queue (true once that file is linked in).
bool openssl_error_queue_kept_clean();

/// Publishes the head on cluster.bind:cluster.port (TLS with cluster.tls);
/// returns the port.
result<std::uint16_t> publish_cluster_head(caf::actor_system& system,
                                           const cluster_head_actor& head,
                                           const cluster_config& cluster);

/// Connects to a published head (blocking), with TLS when `tls`; the error
/// says what to check.
result<cluster_head_actor> connect_to_head(caf::actor_system& system, const std::string& host,
                                           std::uint16_t port, bool tls);

} // namespace dcmstreams
