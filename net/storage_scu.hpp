#pragma once
// A storage SCU (C-STORE sender) with N parallel associations. Each file is
// proposed in its own transfer syntax, with uncompressed fallbacks so that a
// peer refusing a compressed syntax gets the instance decompressed (JPEG,
// JPEG-LS, RLE), as dcmsend does. Used by `dcmstreams send` and by the
// senders of the routing issue.

#include "pipeline/error.hpp"
#include "pipeline/storage_client.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace dcmstreams::net {

/// The storage_client the node uses: DCMTK's DcmStorageSCU underneath.
class dcmtk_storage_client : public storage_client {
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
