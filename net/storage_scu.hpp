#pragma once
// A storage SCU (C-STORE sender) with N parallel associations. Each file is
// proposed in its own transfer syntax, with uncompressed fallbacks so that a
// peer refusing a compressed syntax gets the instance decompressed (JPEG,
// JPEG-LS, RLE), as dcmsend does. Used by `dcmstreams send` and by the
// senders of the routing issue.

#include "pipeline/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dcmstreams::net {

struct send_options {
  std::string host;
  std::uint16_t port = 104;
  std::string calling_ae = "DCMSTREAMS";
  std::string called_ae = "ANY-SCP";
  int associations = 1;
  int acse_timeout_s = 30;
  int dimse_timeout_s = 60;
  std::uint32_t max_pdu = 131072;
};

struct file_outcome {
  std::string path;
  std::uint16_t dimse_status = 0; // of the C-STORE response, if one came
  bool sent = false;              // a response arrived
  std::string message;            // why it failed, in words
};

struct send_report {
  std::size_t files = 0;
  std::size_t succeeded = 0; // status 0x0000
  std::size_t warnings = 0;  // status 0x0001 or 0xBxxx: stored, with a remark
  std::size_t failed = 0;    // refused, unreadable or not sent
  std::uint64_t bytes = 0;   // sizes of the files that were stored
  double seconds = 0;
  int associations_used = 0;
  std::vector<file_outcome> problems; // every file that failed or warned
};

/// Sends `files` and reports per file. Fails as a whole only when nothing can
/// be attempted (bad options); unreachable peers and refusals are per file.
result<send_report> send_files(const std::vector<std::filesystem::path>& files,
                               const send_options& options);

/// Expands folders (recursively) into their regular files, sorted; files stay.
result<std::vector<std::filesystem::path>>
collect_files(const std::vector<std::filesystem::path>& paths);

} // namespace dcmstreams::net
