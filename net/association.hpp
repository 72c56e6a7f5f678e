#pragma once
// One association, on its own thread (DICOM upper layer and DIMSE through
// DCMTK's dcmnet): who may associate, which presentation contexts are
// accepted, and each C-ECHO and C-STORE answered. Receiving a data set goes
// to memory or a spare file; making it durable is the committer's
// (net/instance_committer.hpp); the rest of the node learns of it through
// the ingest port (pipeline/jobs/ingest.hpp). Private to net/.

#include "net/dicom_listener.hpp"
#include "net/instance_committer.hpp"
#include "pipeline/foundation/spare_files.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace dcmstreams::net {

/// One of dicom.max_associations, held by an association's thread. It is
/// given back just before the node's last PDU to the peer (the release
/// answer, a rejection or an A-ABORT): a peer that gets that PDU and at once
/// asks again must find the slot free, and the thread's own wind-down after
/// it (committer, ingest port, dropping the association) serves no one.
class association_slot {
public:
  explicit association_slot(std::atomic<std::size_t>& taken) : taken_(&taken) { ++taken; }
  association_slot(association_slot&& other) noexcept : taken_(other.taken_) {
    other.taken_ = nullptr;
  }
  association_slot(const association_slot&) = delete;
  association_slot& operator=(const association_slot&) = delete;
  association_slot& operator=(association_slot&&) = delete;
  ~association_slot() { give_back(); }

  void give_back() {
    if (taken_)
      --*taken_;
    taken_ = nullptr;
  }

private:
  std::atomic<std::size_t>* taken_;
};

/// What the listener lends each association.
struct association_context {
  const listener_config& config;
  ingest_sink& sink;
  const std::atomic<bool>& stopping; // the listener stops: abort at the next message
  spare_file_pool& spare_files;      // for data sets too large for a journal record
  const store_layout& layout;
};

class association {
public:
  association(const association_context& context, association_slot& slot, T_ASC_Association* assoc,
              int fd, association_request request)
      : context_(context), slot_(slot), assoc_(assoc), fd_(fd), request_(std::move(request)),
        committer_(context.config, context.layout) {}

  void run();

private:
  bool negotiate();
  association_end serve();
  OFCondition store(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID context_id);
  OFCondition respond(T_ASC_PresentationContextID context_id, const T_DIMSE_C_StoreRQ& request,
                      Uint16 status, const std::string& comment);
  OFCondition refuse(T_ASC_PresentationContextID context_id, const T_DIMSE_C_StoreRQ& request,
                     Uint16 status, ec reason, const std::string& comment);
  void reject(T_ASC_RejectParametersResult result, T_ASC_RejectParametersSource source,
              T_ASC_RejectParametersReason reason);
  void abort();
  const association_context& context_;
  association_slot& slot_;
  T_ASC_Association* assoc_;
  int fd_;
  association_request request_;
  instance_committer committer_;
  std::string received_;           // the data set being received, reused
  bool verification_only_ = false; // called the node's own AE title
};

constexpr std::size_t pdu_header_bytes = 6;
/// A-ABORT PDU from the service provider (PS3.8 9.3.8), reason "invalid PDU
/// parameter value": what a peer gets for a request it must not send again.
constexpr unsigned char provider_abort_pdu[] = {0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6};

/// Whether the first six bytes of a connection start an A-ASSOCIATE-RQ that
/// the node reads: its problem ("its first PDU (type 3) is not an
/// A-ASSOCIATE-RQ"), or nothing; `length` gets the PDU's length.
std::optional<std::string> association_request_problem(const unsigned char* header,
                                                       std::uint32_t& length);

void reject(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
            T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason);
/// Drops and frees an association DCMTK received; null afterwards.
void release(T_ASC_Association*& assoc);

} // namespace dcmstreams::net
