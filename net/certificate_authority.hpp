#pragma once
// The cluster's own certificate authority (docs/cluster.md): head and
// workers prove who they are with certificates it signed, and trust nothing
// else. EC P-256 keys, SHA-256 signatures, through OpenSSL.

#include "pipeline/foundation/error.hpp"

#include <filesystem>
#include <string>

namespace dcmstreams::net {

/// Makes a new CA in `dir`: ca.pem (its certificate, for every member's
/// --ca) and ca.key (mode 0600, kept where certificates are signed).
/// Refuses to replace an existing CA.
status create_cluster_ca(const std::filesystem::path& dir);

/// Signs a certificate for `name` (the head or a worker) with the CA in
/// `ca_dir`: <out_dir>/<name>.pem and <name>.key (mode 0600). The
/// certificate serves both ends of a connection (server and client).
status sign_cluster_certificate(const std::filesystem::path& ca_dir, const std::string& name,
                                const std::filesystem::path& out_dir);

} // namespace dcmstreams::net
