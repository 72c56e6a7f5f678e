#pragma once
// DICOM over TLS with DCMTK's dcmtls (OpenSSL): a transport layer set up from
// a destination's PEM files, with the Non-downgrading BCP 195 profile (TLS
// 1.2 or newer, the ciphersuites RFC 7525 recommends) and the peer's
// certificate required and checked against the given authority. Private to
// net/.

#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/error.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include <memory>

namespace dcmstreams::net {

/// A transport layer for `role` (NET_REQUESTOR: the node sends); the
/// failure names the file that could not be used and why. Without `files.ca`
/// no peer certificate can be checked (`verification` must then ignore it).
result<std::unique_ptr<DcmTLSTransportLayer>>
make_tls_layer(const dicom_tls_files& files, T_ASC_NetworkRole role,
               DcmTLSSecurityProfile profile = TSP_Profile_BCP195_ND,
               DcmCertificateVerification verification = DCV_requireCertificate);

} // namespace dcmstreams::net
