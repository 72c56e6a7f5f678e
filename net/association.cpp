#include "net/association.hpp"

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/file_meta.hpp"
#include "pipeline/foundation/allowed_callers.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrma.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dcmstreams::net {

namespace {

constexpr const char* component = "listener";

// Takes the PDV fragments of one data set: into memory while it fits a
// journal record, into a file (one of the spare files) once it does not.
class instance_consumer : public DcmConsumer {
public:
  instance_consumer(std::string& memory, std::size_t memory_limit, spare_file_pool& spares)
      : memory_(memory), limit_(memory_limit), spares_(spares) {}
  OFBool good() const override { return error_ == 0; }
  OFCondition status() const override {
    return error_ == 0 ? EC_Normal : makeOFCondition(OFM_dcmdata, 2, OF_error, "write failed");
  }
  OFBool isFlushed() const override { return OFTrue; }
  offile_off_t avail() const override { return offile_off_t{1} << 30; }
  offile_off_t write(const void* buffer, offile_off_t length) override {
    std::string_view data{static_cast<const char*>(buffer), static_cast<std::size_t>(length)};
    if (error_ != 0)
      return 0;
    if (file_.fd < 0 && memory_.size() + data.size() <= limit_) {
      memory_.append(data);
      return length;
    }
    if (file_.fd < 0) {
      file_ = spares_.take();
      if (file_.fd < 0) {
        error_ = file_.error;
        return 0;
      }
      error_ = write_fully(file_.fd, memory_);
      memory_.clear();
    }
    if (error_ == 0)
      error_ = write_fully(file_.fd, data);
    return error_ == 0 ? length : 0;
  }
  void flush() override {}
  int error() const { return error_; }
  /// The file the data set went to, if it did not fit in memory.
  const spare_file& file() const { return file_; }

private:
  std::string& memory_;
  std::size_t limit_;
  spare_file_pool& spares_;
  spare_file file_;
  int error_ = 0;
};

struct instance_consumer_holder {
  instance_consumer_holder(std::string& memory, std::size_t limit, spare_file_pool& spares)
      : consumer(memory, limit, spares) {}
  instance_consumer consumer;
};

class instance_output_stream : private instance_consumer_holder, public DcmOutputStream {
public:
  instance_output_stream(std::string& memory, std::size_t limit, spare_file_pool& spares)
      : instance_consumer_holder(memory, limit, spares), DcmOutputStream(&consumer) {}
  int error() const { return consumer.error(); }
  const spare_file& file() const { return consumer.file(); }
};

bool is_storage_sop_class(const char* uid) {
  // Every class DCMTK knows, and any class under the storage root
  // 1.2.840.10008.5.1.4.1.1 that is newer than this DCMTK.
  return dcmIsaStorageSOPClassUID(uid, ESSC_All) ||
         std::strncmp(uid, "1.2.840.10008.5.1.4.1.1.", 24) == 0;
}

// Aborts without waiting for the peer to close: DCMTK sends the A-ABORT and
// then reads until the peer closes or its ARTIM timer runs out
// (dicom.acse_timeout_s), which would hold the thread and the association
// slot that long. With reading shut down, that read ends at once.
// `fd` is the association's socket, which DCMTK owns until the association is
// dropped.
void abort_now(T_ASC_Association* assoc, int fd) {
  ::shutdown(fd, SHUT_RD);
  ASC_abortAssociation(assoc);
}

// An A-ASSOCIATE-RQ larger than this is refused unread (DCMTK's own limit,
// dcmAssociatePDUSizeLimit, is the same).
constexpr std::uint32_t max_association_request_bytes = 1 << 20;

} // namespace

std::optional<std::string> association_request_problem(const unsigned char* header,
                                                       std::uint32_t& length) {
  length = (std::uint32_t{header[2]} << 24) | (std::uint32_t{header[3]} << 16) |
           (std::uint32_t{header[4]} << 8) | std::uint32_t{header[5]};
  if (header[0] != 0x01)
    return "its first PDU (type " + std::to_string(header[0]) + ") is not an A-ASSOCIATE-RQ";
  if (length > max_association_request_bytes)
    return "its association request of " + std::to_string(length) + " bytes is larger than " +
           std::to_string(max_association_request_bytes);
  return std::nullopt;
}

void reject(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
            T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason) {
  T_ASC_RejectParameters parameters{result, source, reason};
  ASC_rejectAssociation(assoc, &parameters);
}

void association::reject(T_ASC_RejectParametersResult result, T_ASC_RejectParametersSource source,
                         T_ASC_RejectParametersReason reason) {
  slot_.give_back();
  net::reject(assoc_, result, source, reason);
}

void association::abort() {
  slot_.give_back();
  abort_now(assoc_, fd_);
}

void release(T_ASC_Association*& assoc) {
  if (!assoc)
    return;
  ASC_dropSCPAssociation(assoc);
  ASC_destroyAssociation(&assoc);
  assoc = nullptr;
}

void association::run() {
  auto& config = context_.config;
  auto describe = [&] {
    return request_.calling_ae + " -> " + request_.called_ae + " from " + request_.peer;
  };
  if (!caller_allowed(config.dicom.allowed_callers, request_.calling_ae, request_.peer)) {
    log::warning(component,
                 "refused association " + describe() +
                     ": the calling AE title or address is not in dicom.allowed_callers");
    reject(ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    context_.sink.association_rejected(request_, ec::caller_not_allowed);
    return;
  }
  auto verdict = context_.sink.admit(request_);
  verification_only_ = verdict == association_verdict::verification_only;
  if (verdict == association_verdict::unknown_called_ae) {
    log::warning(component, "refused association " + describe() + ": called AE title \"" +
                                request_.called_ae +
                                "\" not recognized (no enabled stream has it)");
    reject(ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
    context_.sink.association_rejected(request_, ec::unknown_called_ae);
    return;
  }
  if (!negotiate()) {
    context_.sink.association_rejected(request_, ec::unsupported);
    return;
  }
  log::debug(component, "accepted association " + describe());
  context_.sink.association_started(request_);
  committer_.attach();
  association_end end = association_end::failed;
  try {
    end = serve();
  } catch (const std::exception& e) {
    log::error(component, "association " + describe() + " failed: " + e.what());
    abort();
  }
  committer_.detach();
  context_.sink.association_ended(request_, end);
}

bool association::negotiate() {
  char context_name[65] = {};
  if (ASC_getApplicationContextName(assoc_->params, context_name, sizeof context_name).bad() ||
      std::strcmp(context_name, UID_StandardApplicationContext) != 0) {
    log::warning(component, "refused association from " + request_.peer +
                                ": unsupported application context " + context_name);
    reject(ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED);
    return false;
  }
  int count = ASC_countPresentationContexts(assoc_->params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext context;
    if (ASC_getPresentationContext(assoc_->params, i, &context).bad())
      continue;
    bool verification = std::strcmp(context.abstractSyntax, UID_VerificationSOPClass) == 0;
    if (!verification && (verification_only_ || !is_storage_sop_class(context.abstractSyntax))) {
      ASC_refusePresentationContext(assoc_->params, context.presentationContextID,
                                    ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
      continue;
    }
    // The sender's own order of preference, so that a compressed instance
    // arrives compressed and is stored as sent.
    const char* chosen = nullptr;
    for (int t = 0; t < context.transferSyntaxCount && !chosen; ++t)
      if (DcmXfer(context.proposedTransferSyntaxes[t]).getXfer() != EXS_Unknown)
        chosen = context.proposedTransferSyntaxes[t];
    if (!chosen)
      ASC_refusePresentationContext(assoc_->params, context.presentationContextID,
                                    ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
    else
      ASC_acceptPresentationContext(assoc_->params, context.presentationContextID, chosen);
  }
  OFCondition cond = ASC_acknowledgeAssociation(assoc_);
  if (cond.bad()) {
    log::warning(component,
                 "cannot acknowledge the association from " + request_.peer + ": " + cond.text());
    return false;
  }
  return true;
}

association_end association::serve() {
  int idle_seconds = 0;
  for (;;) {
    T_DIMSE_Message message;
    T_ASC_PresentationContextID context_id = 0;
    DcmDataset* status_detail = nullptr;
    // Short waits so that a stopping node does not wait for idle peers.
    OFCondition cond =
        DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, 1, &context_id, &message, &status_detail);
    delete status_detail;
    if (cond == DIMSE_NODATAAVAILABLE) {
      if (context_.stopping) {
        abort();
        return association_end::aborted_by_node;
      }
      if (++idle_seconds >= context_.config.dicom.dimse_timeout_s) {
        log::warning(component, "aborting the association from " + request_.calling_ae + "@" +
                                    request_.peer + ": idle for " + std::to_string(idle_seconds) +
                                    " s (dicom.dimse_timeout_s)");
        abort();
        return association_end::aborted_by_node;
      }
      continue;
    }
    idle_seconds = 0;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      committer_.sync_association_writes();
      slot_.give_back();
      ASC_acknowledgeRelease(assoc_);
      return association_end::released;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION)
      return association_end::aborted_by_peer;
    if (cond.bad()) {
      log::warning(component, "association from " + request_.calling_ae + "@" + request_.peer +
                                  " failed while reading a command: " + cond.text());
      abort();
      return association_end::failed;
    }
    switch (message.CommandField) {
    case DIMSE_C_ECHO_RQ:
      cond =
          DIMSE_sendEchoResponse(assoc_, context_id, &message.msg.CEchoRQ, STATUS_Success, nullptr);
      break;
    case DIMSE_C_STORE_RQ:
      cond = store(message.msg.CStoreRQ, context_id);
      break;
    default:
      log::warning(component, "aborting the association from " + request_.peer +
                                  ": unsupported DIMSE command " +
                                  std::to_string(message.CommandField));
      abort();
      return association_end::aborted_by_node;
    }
    if (cond.bad()) {
      log::warning(component, "association from " + request_.calling_ae + "@" + request_.peer +
                                  " failed: " + cond.text());
      abort();
      return association_end::failed;
    }
  }
}

OFCondition association::respond(T_ASC_PresentationContextID context_id,
                                 const T_DIMSE_C_StoreRQ& request, Uint16 status,
                                 const std::string& comment) {
  T_DIMSE_C_StoreRSP response;
  std::memset(&response, 0, sizeof response);
  response.MessageIDBeingRespondedTo = request.MessageID;
  response.DimseStatus = status;
  response.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(response.AffectedSOPClassUID, request.AffectedSOPClassUID,
                      sizeof response.AffectedSOPClassUID);
  OFStandard::strlcpy(response.AffectedSOPInstanceUID, request.AffectedSOPInstanceUID,
                      sizeof response.AffectedSOPInstanceUID);
  response.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
  if (comment.empty())
    return DIMSE_sendStoreResponse(assoc_, context_id, &request, &response, nullptr);
  DcmDataset detail;
  // Error Comment is LO: at most 64 characters.
  detail.putAndInsertString(DCM_ErrorComment, comment.substr(0, 64).c_str());
  return DIMSE_sendStoreResponse(assoc_, context_id, &request, &response, &detail);
}

OFCondition association::refuse(T_ASC_PresentationContextID context_id,
                                const T_DIMSE_C_StoreRQ& request, Uint16 status, ec reason,
                                const std::string& comment) {
  log::warning(component, "refused instance " + std::string(request.AffectedSOPInstanceUID) +
                              " from " + request_.calling_ae + "@" + request_.peer + " to " +
                              request_.called_ae + ": " + comment);
  context_.sink.store_failed(request_, reason, comment);
  return respond(context_id, request, status, comment);
}

OFCondition association::store(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID context_id) {
  auto& config = context_.config;
  auto drain = [&] {
    DIC_UL bytes = 0, pdvs = 0;
    return DIMSE_ignoreDataSet(assoc_, DIMSE_NONBLOCKING, config.dicom.dimse_timeout_s, &bytes,
                               &pdvs);
  };

  if (config.reserve_free_bytes > 0) {
    auto free = free_bytes(config.data_dir);
    if (free && *free < config.reserve_free_bytes) {
      OFCondition cond = drain();
      if (cond.bad())
        return cond;
      return refuse(context_id, request, STATUS_STORE_Refused_OutOfResources, ec::out_of_resources,
                    "free disk space below storage.reserve_free_mb");
    }
  }

  T_ASC_PresentationContext context;
  if (ASC_findAcceptedPresentationContext(assoc_->params, context_id, &context).bad()) {
    OFCondition cond = drain();
    return cond.bad() ? cond
                      : refuse(context_id, request, STATUS_STORE_Error_CannotUnderstand,
                               ec::invalid_dataset, "unknown presentation context");
  }

  // The file as the job will get it: a meta header naming the association,
  // then the data set byte for byte.
  received_.assign(
      encode_file_meta({request.AffectedSOPClassUID, request.AffectedSOPInstanceUID,
                        context.acceptedTransferSyntax, request_.calling_ae, request_.called_ae,
                        presentation_address(request_.peer, request_.peer_port)}));
  auto* journal = config.ingest_journal;
  committer_.receiving();
  instance_output_stream out{received_, journal ? journal->record_limit() : 0,
                             context_.spare_files};
  T_ASC_PresentationContextID data_context_id = context_id;
  OFCondition cond =
      DIMSE_receiveDataSetInFile(assoc_, DIMSE_NONBLOCKING, config.dicom.dimse_timeout_s,
                                 &data_context_id, &out, nullptr, nullptr);
  int write_error = out.error();
  const spare_file& file = out.file();
  bool in_file = file.fd >= 0;
  std::uint64_t bytes = received_.size();
  std::uint64_t inode = 0;
  if (in_file) {
    if (write_error == 0 && cond.good() && config.sync == sync_mode::instance &&
        ::fdatasync(file.fd) != 0)
      write_error = errno;
    struct stat written {};
    ::fstat(file.fd, &written);
    bytes = static_cast<std::uint64_t>(written.st_size);
    inode = static_cast<std::uint64_t>(written.st_ino);
    if (::close(file.fd) != 0 && write_error == 0)
      write_error = errno;
  }
  auto discard = [&] {
    if (in_file)
      ::unlink(file.path.c_str());
  };
  if (cond.bad() || write_error != 0) {
    discard();
    if (write_error != 0 || cond == DIMSE_OUTOFRESOURCES)
      return refuse(context_id, request, STATUS_STORE_Refused_OutOfResources, ec::io_error,
                    "cannot write the instance: " +
                        errno_text(write_error != 0 ? write_error : ENOSPC));
    return cond; // the network failed: the association ends
  }

  // The message starts with a name that means nothing to the sender.
  auto header = in_file ? read_instance_header(file.path) : read_instance_header(received_, "-");
  if (!header) {
    discard();
    auto& message = header.error().message;
    auto why =
        message.substr(std::min(message.size(), (in_file ? file.path.native().size() : 1) + 2));
    return refuse(context_id, request, STATUS_STORE_Error_CannotUnderstand, ec::invalid_dataset,
                  "cannot parse the data set, " + why);
  }
  if (!valid_uid(header->study_uid)) {
    discard();
    return refuse(context_id, request, STATUS_STORE_Error_DataSetDoesNotMatchSOPClass,
                  ec::missing_attribute,
                  header->study_uid.empty() ? "StudyInstanceUID is missing"
                                            : "StudyInstanceUID is not a valid UID");
  }
  // The data set's own SOP Instance UID names the instance, so that a resent
  // instance replaces its earlier copy.
  std::string sop_uid = valid_uid(header->sop_instance_uid) ? header->sop_instance_uid
                                                            : request.AffectedSOPInstanceUID;
  if (!valid_uid(sop_uid)) {
    discard();
    return refuse(context_id, request, STATUS_STORE_Error_DataSetDoesNotMatchSOPClass,
                  ec::missing_attribute, "SOPInstanceUID is not a valid UID");
  }

  stored_instance stored;
  stored.called_ae = request_.called_ae;
  stored.calling_ae = request_.calling_ae;
  stored.peer = request_.peer;
  stored.peer_port = request_.peer_port;
  stored.study_uid = header->study_uid;
  stored.series_uid = header->series_uid;
  stored.sop_class_uid = header->sop_class_uid;
  stored.sop_uid = sop_uid;
  stored.transfer_syntax_uid = context.acceptedTransferSyntax;
  stored.modality = header->modality;
  stored.series_description = header->series_description;
  stored.bytes = bytes;
  stored.inode = inode;
  auto problem = in_file ? committer_.commit_file(file.path, stored)
                         : committer_.commit_record(stored, received_);
  if (problem) {
    discard();
    return refuse(context_id, request, STATUS_STORE_Refused_OutOfResources, ec::io_error,
                  problem->message);
  }
  context_.sink.instance_stored(stored);
  return respond(context_id, request, STATUS_Success, {});
}

} // namespace dcmstreams::net
