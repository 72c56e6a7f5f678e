#pragma once
// Sending DICOM files to a peer, as the rest of the node sees it: the types
// and a small interface that net/ implements with DCMTK and the node wires
// in, so that actors/ never touch DCMTK.

#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

struct send_options {
  std::string host;
  std::uint16_t port = 104;
  std::string calling_ae = "DCMSTREAMS";
  std::string called_ae = "ANY-SCP";
  int associations = 1;
  int acse_timeout_s = 30;
  int dimse_timeout_s = 60;
  std::uint32_t max_pdu = 131072;
  std::optional<dicom_tls_files> tls; // set: the associations are TLS connections
  /// Set: sent by DICOMweb STOW-RS to this service instead of C-STORE (host,
  /// port and AE titles unused); dimse_timeout_s bounds each HTTP step.
  std::optional<dicomweb_target> dicomweb;
};

struct file_outcome;
/// Called once per file as soon as its outcome is known, from the sending
/// threads (several at once with several associations).
using file_outcome_handler = std::function<void(const file_outcome&)>;

/// A C-STORE response status that stores the instance with a remark:
/// 0x0001 or 0xBxxx (PS3.7 C.4.2.1.4, PS3.4 B.2.3).
inline bool is_warning_status(std::uint16_t status) {
  return status == 0x0001 || (status & 0xf000) == 0xb000;
}

struct file_outcome {
  std::string path;
  /// Of the C-STORE response, if one came; over STOW-RS 0 for a stored
  /// instance, else the Failure Reason (0008,1197) or 0x0110.
  std::uint16_t dimse_status = 0;
  bool sent = false;   // a response arrived
  std::string message; // why it failed, in words
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

  /// Counts one file's outcome.
  void count(const file_outcome& outcome) {
    if (outcome.sent && outcome.dimse_status == 0) {
      ++succeeded;
      return;
    }
    if (outcome.sent && is_warning_status(outcome.dimse_status))
      ++warnings;
    else
      ++failed;
    problems.push_back(outcome);
  }
};

class storage_client {
public:
  virtual ~storage_client() = default;
  /// Sends `files` and reports per file, through `on_file` as soon as each is
  /// known and in the report at the end. Fails as a whole only for bad options.
  virtual result<send_report> send(const std::vector<std::filesystem::path>& files,
                                   const send_options& options,
                                   const file_outcome_handler& on_file) = 0;
};

} // namespace dcmstreams
