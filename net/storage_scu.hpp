#pragma once
// A storage SCU (C-STORE sender) with N parallel associations, on DCMTK's
// DcmSCU. Each file is proposed in its own transfer syntax, alone in its
// presentation context, so a peer that accepts that syntax receives the file
// as it is (a configured destination syntax really arrives). A compressed file
// this DCMTK can decode (JPEG, JPEG-LS, RLE) also gets a separate context with
// the uncompressed syntaxes, used only when its own was refused; one it cannot
// decode (JPEG 2000, MPEG, HEVC) is sent as it is or, if refused, fails with a
// reason that says so. Every file gets an outcome with a reason. Used by
// `dcmstreams send` and by the routing senders.

#include "pipeline/foundation/error.hpp"
#include "pipeline/routing/storage_client.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace dcmstreams::net {

/// The storage_client the node uses: C-STORE with DCMTK's DcmSCU, or STOW-RS
/// (net/stow_client.hpp) for a DICOMweb destination.
class node_storage_client : public storage_client {
public:
  result<send_report> send(const std::vector<std::filesystem::path>& files,
                           const send_options& options,
                           const file_outcome_handler& on_file) override;
};

/// Sends `files` and reports per file. Fails as a whole only when nothing can
/// be attempted (bad options); unreachable peers and refusals are per file.
result<send_report> send_files(const std::vector<std::filesystem::path>& files,
                               const send_options& options, file_outcome_handler on_file = nullptr);

/// Expands folders (recursively) into their regular files, sorted; files stay.
result<std::vector<std::filesystem::path>>
collect_files(const std::vector<std::filesystem::path>& paths);

} // namespace dcmstreams::net
