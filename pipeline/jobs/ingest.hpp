#pragma once
// What the DICOM listener (net/) tells the rest of the node, as a small
// interface in plain C++ so that net/ knows nothing of actors: the node wires
// an implementation in (Orthanc's handler-interface style).

#include "pipeline/foundation/error.hpp"
#include "pipeline/jobs/journal.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace dcmstreams {

struct association_request {
  std::string calling_ae;
  std::string called_ae;
  std::string peer; // numeric address of the calling peer
  std::uint16_t peer_port = 0;
};

enum class association_verdict {
  accept,
  unknown_called_ae, // no enabled stream has the called AE title
  verification_only, // the node's own AE title: C-ECHO only, nothing is stored
};

struct stored_instance {
  std::string called_ae;
  std::string calling_ae;
  std::string peer;
  std::uint16_t peer_port = 0; // of the association that stored it
  std::string study_uid;
  std::string series_uid;
  std::string sop_class_uid;
  std::string sop_uid;
  std::string transfer_syntax_uid;
  std::string modality;
  std::string series_description;
  journal_ref record; // in the journal, or:
  std::string path;   // the final file in incoming/ (a data set too large for a record)
  std::uint64_t bytes = 0;
  std::uint64_t inode = 0; // of the stored file, to tell it from a later copy
};

/// Why an association ended, for metrics and logs.
enum class association_end { released, aborted_by_peer, aborted_by_node, failed };
const char* to_string(association_end end);

/// Called on association threads, concurrently: implementations are
/// thread-safe and never block (they post messages and bump atomics).
class ingest_sink {
public:
  virtual ~ingest_sink() = default;
  /// Decides whether the called AE title names an enabled stream.
  virtual association_verdict admit(const association_request& request) = 0;
  /// An association was refused before it started (`reason` in words).
  virtual void association_rejected(const association_request& request, ec reason) = 0;
  /// A connection to the TLS listener was refused before its association
  /// request: caller_not_allowed (its certificate), unsupported (plain
  /// DICOM), network_error (the handshake failed otherwise).
  virtual void tls_refused(const std::string& peer, ec reason) = 0;
  virtual void association_started(const association_request& request) = 0;
  virtual void association_ended(const association_request& request, association_end end) = 0;
  /// The instance is durable (per storage.sync) in the journal or under its
  /// final name; success is answered next.
  virtual void instance_stored(const stored_instance& instance) = 0;
  /// An instance was refused with a failure status.
  virtual void store_failed(const association_request& request, ec reason,
                            const std::string& message) = 0;
};

} // namespace dcmstreams
