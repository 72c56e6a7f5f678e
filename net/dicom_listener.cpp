#include "net/dicom_listener.hpp"

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/file_meta.hpp"
#include "pipeline/foundation/allowed_callers.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrma.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

namespace dcmstreams::net {

namespace {

constexpr const char* component = "listener";
// Files kept ready for incoming instances; enough for a burst on every core.
constexpr std::size_t spare_file_count = 64;

// An A-ASSOCIATE-RQ larger than this is refused unread (DCMTK's own limit,
// dcmAssociatePDUSizeLimit, is the same).
constexpr std::uint32_t max_association_request_bytes = 1 << 20;
constexpr std::size_t pdu_header_bytes = 6;
// Connections still sending their association request, beyond which the one
// that has waited longest is dropped: bounded memory and descriptors whatever
// a hostile network does.
constexpr std::size_t max_negotiating_connections = 512;

// dcmExternalSocketHandle is one process-wide variable that DCMTK reads when
// an association is received; this lock makes "set it, receive, reset it" one
// step for all listeners in the process. It is only taken once the whole
// A-ASSOCIATE-RQ waits in the socket's buffer, so DCMTK never blocks under it.
std::mutex external_socket_mutex;

T_ASC_Network* as_network(void* p) {
  return static_cast<T_ASC_Network*>(p);
}

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

std::string trim(const char* text) {
  std::string s{text};
  auto begin = s.find_first_not_of(' ');
  auto end = s.find_last_not_of(' ');
  return begin == std::string::npos ? std::string() : s.substr(begin, end - begin + 1);
}

void reject(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
            T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason) {
  T_ASC_RejectParameters parameters{result, source, reason};
  ASC_rejectAssociation(assoc, &parameters);
}

void release(T_ASC_Association*& assoc) {
  if (!assoc)
    return;
  ASC_dropSCPAssociation(assoc);
  ASC_destroyAssociation(&assoc);
  assoc = nullptr;
}

// A-ABORT PDU from the service provider (PS3.8 9.3.8), reason "invalid PDU
// parameter value": what a peer gets for a request it must not send again.
void send_provider_abort(int fd) {
  static constexpr unsigned char pdu[] = {0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6};
  if (fd >= 0) [[maybe_unused]]
    auto ignored = ::send(fd, pdu, sizeof pdu, MSG_NOSIGNAL | MSG_DONTWAIT);
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

} // namespace

// One association, on its own thread.
class association {
public:
  association(dicom_listener& listener, T_ASC_Association* assoc, int fd,
              association_request request)
      : listener_(listener), assoc_(assoc), fd_(fd), request_(std::move(request)) {}

  void run();

private:
  bool negotiate();
  association_end serve();
  OFCondition store(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID context_id);
  OFCondition respond(T_ASC_PresentationContextID context_id, const T_DIMSE_C_StoreRQ& request,
                      Uint16 status, const std::string& comment);
  OFCondition refuse(T_ASC_PresentationContextID context_id, const T_DIMSE_C_StoreRQ& request,
                     Uint16 status, ec reason, const std::string& comment);
  /// Makes a data set held in memory durable in the journal (per storage.sync).
  status commit_record(stored_instance& stored);
  /// Moves a data set received into a file to its final name in incoming/.
  status commit_file(const std::filesystem::path& temporary, stored_instance& stored);
  void sync_association_writes();

  dicom_listener& listener_;
  T_ASC_Association* assoc_;
  int fd_;
  association_request request_;
  std::string known_dir_; // the last study folder known to exist
  std::vector<std::string> unsynced_files_;
  std::set<std::string> unsynced_dirs_;
  journal_ticket unsynced_record_; // sync_mode::association: the last record appended
  std::string received_;           // the data set being received, reused
  journal::writer writer_;         // this association, as the journal's group commit sees it
  bool verification_only_ = false; // called the node's own AE title
};

void association::run() {
  auto& config = listener_.config_;
  auto describe = [&] {
    return request_.calling_ae + " -> " + request_.called_ae + " from " + request_.peer;
  };
  if (!caller_allowed(config.dicom.allowed_callers, request_.calling_ae, request_.peer)) {
    log::warning(component,
                 "refused association " + describe() +
                     ": the calling AE title or address is not in dicom.allowed_callers");
    reject(assoc_, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    listener_.sink_.association_rejected(request_, ec::caller_not_allowed);
    return;
  }
  auto verdict = listener_.sink_.admit(request_);
  verification_only_ = verdict == association_verdict::verification_only;
  if (verdict == association_verdict::unknown_called_ae) {
    log::warning(component, "refused association " + describe() + ": called AE title \"" +
                                request_.called_ae +
                                "\" not recognized (no enabled stream has it)");
    reject(assoc_, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
    listener_.sink_.association_rejected(request_, ec::unknown_called_ae);
    return;
  }
  if (!negotiate()) {
    listener_.sink_.association_rejected(request_, ec::unsupported);
    return;
  }
  log::debug(component, "accepted association " + describe());
  listener_.sink_.association_started(request_);
  auto* journal = listener_.config_.ingest_journal;
  if (journal)
    journal->attach(writer_);
  association_end end = association_end::failed;
  try {
    end = serve();
  } catch (const std::exception& e) {
    log::error(component, "association " + describe() + " failed: " + e.what());
    abort_now(assoc_, fd_);
  }
  if (journal)
    journal->detach(writer_);
  listener_.sink_.association_ended(request_, end);
}

bool association::negotiate() {
  char context_name[65] = {};
  if (ASC_getApplicationContextName(assoc_->params, context_name, sizeof context_name).bad() ||
      std::strcmp(context_name, UID_StandardApplicationContext) != 0) {
    log::warning(component, "refused association from " + request_.peer +
                                ": unsupported application context " + context_name);
    reject(assoc_, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
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
      if (listener_.stopping_) {
        abort_now(assoc_, fd_);
        return association_end::aborted_by_node;
      }
      if (++idle_seconds >= listener_.config_.dicom.dimse_timeout_s) {
        log::warning(component, "aborting the association from " + request_.calling_ae + "@" +
                                    request_.peer + ": idle for " + std::to_string(idle_seconds) +
                                    " s (dicom.dimse_timeout_s)");
        abort_now(assoc_, fd_);
        return association_end::aborted_by_node;
      }
      continue;
    }
    idle_seconds = 0;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      sync_association_writes();
      ASC_acknowledgeRelease(assoc_);
      return association_end::released;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION)
      return association_end::aborted_by_peer;
    if (cond.bad()) {
      log::warning(component, "association from " + request_.calling_ae + "@" + request_.peer +
                                  " failed while reading a command: " + cond.text());
      abort_now(assoc_, fd_);
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
      abort_now(assoc_, fd_);
      return association_end::aborted_by_node;
    }
    if (cond.bad()) {
      log::warning(component, "association from " + request_.calling_ae + "@" + request_.peer +
                                  " failed: " + cond.text());
      abort_now(assoc_, fd_);
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
  listener_.sink_.store_failed(request_, reason, comment);
  return respond(context_id, request, status, comment);
}

OFCondition association::store(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID context_id) {
  auto& config = listener_.config_;
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
  // While this data set arrives, a flush about to start may wait for it.
  writer_.active();
  instance_output_stream out{received_, journal ? journal->record_limit() : 0,
                             *listener_.spare_files_};
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
  stored.study_uid = header->study_uid;
  stored.series_uid = header->series_uid;
  stored.sop_class_uid = header->sop_class_uid;
  stored.sop_uid = sop_uid;
  stored.transfer_syntax_uid = context.acceptedTransferSyntax;
  stored.modality = header->modality;
  stored.bytes = bytes;
  stored.inode = inode;
  auto problem = in_file ? commit_file(file.path, stored) : commit_record(stored);
  if (problem) {
    discard();
    return refuse(context_id, request, STATUS_STORE_Refused_OutOfResources, ec::io_error,
                  problem->message);
  }
  listener_.sink_.instance_stored(stored);
  return respond(context_id, request, STATUS_Success, {});
}

status association::commit_record(stored_instance& stored) {
  auto& journal = *listener_.config_.ingest_journal;
  auto ticket = journal.append_instance(
      {stored.called_ae, stored.calling_ae, stored.peer, stored.study_uid, stored.sop_uid},
      received_);
  if (!ticket)
    return ticket.error();
  switch (listener_.config_.sync) {
  case sync_mode::instance:
    if (auto problem = journal.wait_durable(*ticket, &writer_)) {
      journal.release({ticket->ref});
      return problem;
    }
    break;
  case sync_mode::association:
    unsynced_record_ = *ticket; // the last one: waiting for it waits for all before
    break;
  case sync_mode::none:
    break;
  }
  stored.record = ticket->ref;
  return std::nullopt;
}

status association::commit_file(const std::filesystem::path& temporary, stored_instance& stored) {
  auto& config = listener_.config_;
  bool durable = config.sync == sync_mode::instance;
  auto dir = listener_.layout_.incoming_study_dir(stored.called_ae, stored.calling_ae, stored.peer,
                                                  stored.study_uid);
  if (dir.native() != known_dir_) {
    if (auto problem = create_directories(dir, durable))
      return problem;
    known_dir_ = dir.native();
  }
  auto final_path = dir / (stored.sop_uid + ".dcm");
  if (::rename(temporary.c_str(), final_path.c_str()) != 0)
    return failure{ec::io_error, "cannot move the instance into place: " + errno_text(errno)};
  if (durable) {
    if (auto problem = sync_directory(dir))
      return problem;
  } else if (config.sync == sync_mode::association) {
    unsynced_files_.push_back(final_path.native());
    unsynced_dirs_.insert(dir.native());
  }
  stored.path = final_path.native();
  return std::nullopt;
}

void association::sync_association_writes() {
  if (unsynced_record_.ref) {
    if (auto problem = listener_.config_.ingest_journal->wait_durable(unsynced_record_, &writer_))
      log::error(component, problem->message);
    unsynced_record_ = {};
  }
  for (auto& file : unsynced_files_)
    if (auto problem = sync_file(file))
      log::error(component, problem->message);
  for (auto& dir : unsynced_dirs_)
    if (auto problem = sync_directory(dir))
      log::error(component, problem->message);
  unsynced_files_.clear();
  unsynced_dirs_.clear();
}

// -- dicom_listener -------------------------------------------------------------

dicom_listener::dicom_listener(listener_config config, ingest_sink& sink)
    : config_(std::move(config)), sink_(sink), layout_(config_.data_dir) {}

dicom_listener::~dicom_listener() {
  stop();
}

status dicom_listener::start() {
  // Debian's DCMTK leaves Nagle on unless TCP_NODELAY is in the environment;
  // without it every C-STORE response waits ~45 ms.
  ::setenv("TCP_NODELAY", "1", 0);
  dcmDisableGethostbyaddr.set(OFTrue);
  if (auto problem = check_dicom_dictionary())
    return problem;
  if (auto problem = create_directories(layout_.receive_dir(), true))
    return problem;

  std::string where = config_.dicom.bind + ":" + std::to_string(config_.dicom.port);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(config_.dicom.port);
  if (inet_pton(AF_INET, config_.dicom.bind.c_str(), &address.sin_addr) != 1)
    return failure{ec::invalid_config, "dicom.bind \"" + config_.dicom.bind +
                                           "\" is not an IPv4 address such as 0.0.0.0 or "
                                           "127.0.0.1"};
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    int saved = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    std::string hint = saved == EADDRINUSE
                           ? "; another program listens there: stop it or set dicom.port / "
                             "--dicom-port"
                           : "";
    return failure{ec::network_error,
                   "cannot listen for DICOM on " + where + ": " + errno_text(saved) + hint};
  }
  socklen_t length = sizeof address;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  bound_port_ = ntohs(address.sin_port);

  // With an external socket set, DCMTK creates no listening socket of its own;
  // this one accepts, DCMTK only speaks DICOM on accepted connections.
  T_ASC_Network* network = nullptr;
  OFCondition cond;
  {
    std::lock_guard<std::mutex> guard{external_socket_mutex};
    dcmExternalSocketHandle.set(listen_fd_);
    cond = ASC_initializeNetwork(NET_ACCEPTOR, bound_port_, config_.dicom.acse_timeout_s, &network);
    dcmExternalSocketHandle.set(-1);
  }
  if (cond.bad()) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return failure{ec::network_error,
                   std::string("cannot initialize DICOM networking: ") + cond.text()};
  }
  network_ = network;
  spare_files_ =
      std::make_unique<spare_file_pool>(layout_.receive_dir(), "receive", spare_file_count);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0)
    return failure{ec::io_error, "cannot create a pipe: " + errno_text(errno)};
  stopping_ = false;
  accept_thread_ = std::thread([this] { accept_loop(); });
  log::info(component, "listening for DICOM on " + config_.dicom.bind + ":" +
                           std::to_string(bound_port_) + " (up to " +
                           std::to_string(config_.dicom.max_associations) + " associations, sync " +
                           to_string(config_.sync) + ")");
  return std::nullopt;
}

void dicom_listener::stop() {
  if (!accept_thread_.joinable())
    return;
  stopping_ = true;
  char byte = 1;
  [[maybe_unused]] auto ignored = ::write(wake_pipe_[1], &byte, 1);
  accept_thread_.join();
  std::list<worker> remaining;
  {
    std::lock_guard<std::mutex> guard{workers_mutex_};
    remaining.swap(workers_);
  }
  for (auto& w : remaining)
    w.thread.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
  listen_fd_ = wake_pipe_[0] = wake_pipe_[1] = -1;
  T_ASC_Network* network = as_network(network_);
  ASC_dropNetwork(&network);
  network_ = nullptr;
  spare_files_.reset();
  log::info(component, "stopped listening for DICOM");
}

status dicom_listener::restart() {
  std::lock_guard<std::mutex> guard{restart_mutex_};
  stop();
  if (auto port = bound_port_.load())
    config_.dicom.port = port;
  wedged_ = false;
  return start();
}

void dicom_listener::reap_finished_workers() {
  std::lock_guard<std::mutex> guard{workers_mutex_};
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {

// Lets DCMTK read the A-ASSOCIATE-RQ that already waits, whole, in `fd`'s
// buffer. A request DCMTK cannot parse gets an A-ABORT.
T_ASC_Association* receive_request(T_ASC_Network* network, int fd, const listener_config& config,
                                   const std::string& peer) {
  T_ASC_Association* assoc = nullptr;
  OFCondition cond;
  try {
    std::lock_guard<std::mutex> guard{external_socket_mutex};
    dcmExternalSocketHandle.set(fd);
    cond = ASC_receiveAssociation(network, &assoc, static_cast<int>(config.dicom.max_pdu), nullptr,
                                  nullptr, OFFalse, DUL_NOBLOCK, config.dicom.acse_timeout_s);
    dcmExternalSocketHandle.set(-1);
  } catch (const std::exception& e) {
    dcmExternalSocketHandle.set(-1);
    cond = makeOFCondition(OFM_dcmnet, 1, OF_error, e.what());
  }
  if (cond.bad()) {
    log::warning(component, "aborted the association request from " + peer +
                                ", which cannot be parsed: " + cond.text());
    // DCMTK keeps the socket open in a failed association and closes it
    // when the association is dropped.
    send_provider_abort(fd);
    if (assoc)
      release(assoc);
    else
      ::close(fd);
    return nullptr;
  }
  return assoc;
}

std::uint32_t big_endian_32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void set_receive_low_water_mark(int fd, std::size_t bytes) {
  int value = static_cast<int>(bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value);
}

} // namespace

void dicom_listener::refuse_busy(int fd, const std::string& peer, std::uint16_t peer_port) {
  auto* assoc = receive_request(as_network(network_), fd, config_, peer);
  if (!assoc)
    return;
  association_request request{trim(assoc->params->DULparams.callingAPTitle),
                              trim(assoc->params->DULparams.calledAPTitle), peer, peer_port};
  log::warning(component, "refused association " + request.calling_ae + " -> " + request.called_ae +
                              " from " + peer + ": all " +
                              std::to_string(config_.dicom.max_associations) +
                              " association slots are busy (dicom.max_associations)");
  reject(assoc, ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
         ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED);
  sink_.association_rejected(request, ec::out_of_resources);
  release(assoc);
}

dicom_listener::request_progress dicom_listener::check_request(negotiating_connection& c) {
  unsigned char header[pdu_header_bytes];
  auto n = ::recv(c.fd, header, sizeof header, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    log::debug(component, "a connection from " + c.peer + " closed before its association request");
    return request_progress::dropped;
  }
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? request_progress::waiting
                                             : request_progress::dropped;
  if (static_cast<std::size_t>(n) < pdu_header_bytes) {
    c.received = static_cast<std::size_t>(n);
    set_receive_low_water_mark(c.fd, pdu_header_bytes);
    return request_progress::waiting;
  }
  auto length = big_endian_32(header + 2);
  if (header[0] != 0x01 || length > max_association_request_bytes) {
    log::warning(
        component,
        "aborted a connection from " + c.peer + ": " +
            (header[0] != 0x01
                 ? "its first PDU (type " + std::to_string(header[0]) + ") is not an A-ASSOCIATE-RQ"
                 : "its association request of " + std::to_string(length) +
                       " bytes is larger than " + std::to_string(max_association_request_bytes)));
    send_provider_abort(c.fd);
    return request_progress::dropped;
  }
  std::size_t wanted = pdu_header_bytes + length;
  int available = 0;
  ::ioctl(c.fd, FIONREAD, &available);
  if (static_cast<std::size_t>(available) >= wanted) {
    // DCMTK waits for data with poll/select too: back to the default.
    set_receive_low_water_mark(c.fd, 1);
    return request_progress::complete;
  }
  // Poll wakes again only when the whole request is there (or the peer
  // closes); the kernel grows the buffer to hold it.
  set_receive_low_water_mark(c.fd, wanted);
  c.received = static_cast<std::size_t>(available);
  c.expected = wanted;
  return request_progress::waiting;
}

void dicom_listener::start_association(negotiating_connection c) {
  if (active_.load() >= static_cast<std::size_t>(config_.dicom.max_associations)) {
    refuse_busy(c.fd, c.peer, c.peer_port);
    return;
  }
  ++active_;
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([this, fd = c.fd, peer = c.peer, peer_port = c.peer_port, done] {
    if (auto* assoc = receive_request(as_network(network_), fd, config_, peer)) {
      association_request request{trim(assoc->params->DULparams.callingAPTitle),
                                  trim(assoc->params->DULparams.calledAPTitle), peer, peer_port};
      association handler{*this, assoc, fd, std::move(request)};
      handler.run();
      release(assoc);
    }
    --active_;
    done->store(true);
  });
  std::lock_guard<std::mutex> guard{workers_mutex_};
  workers_.push_back({std::move(thread), done});
}

void dicom_listener::accept_connection(std::vector<negotiating_connection>& negotiating) {
  sockaddr_storage from{};
  socklen_t length = sizeof from;
  int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from), &length, SOCK_CLOEXEC);
  if (fd < 0)
    return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t peer_port = 0;
  if (from.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&from);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    peer_port = ntohs(v4->sin_port);
  }
  if (negotiating.size() >= max_negotiating_connections) {
    auto& oldest = negotiating.front();
    log::warning(component, "closed a connection from " + oldest.peer + ": " +
                                std::to_string(max_negotiating_connections) +
                                " connections are still sending their association requests, and "
                                "this one has waited longest");
    ::close(oldest.fd);
    negotiating.erase(negotiating.begin());
  }
  set_receive_low_water_mark(fd, pdu_header_bytes);
  negotiating.push_back(
      {fd, host, peer_port,
       std::chrono::steady_clock::now() + std::chrono::seconds(config_.dicom.acse_timeout_s), 0,
       pdu_header_bytes});
}

// One thread accepts every connection and waits, in one poll, for each to
// send its whole A-ASSOCIATE-RQ before any DICOM code reads from it: a peer
// that is silent or trickles bytes holds nothing but its own descriptor and
// is dropped when its own dicom.acse_timeout_s runs out.
void dicom_listener::accept_loop() {
  using clock = std::chrono::steady_clock;
  std::vector<negotiating_connection> negotiating; // oldest first
  std::vector<pollfd> fds;
  auto close_all = [&] {
    for (auto& c : negotiating)
      ::close(c.fd);
    negotiating.clear();
  };
  for (;;) {
    fds.assign({{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}});
    auto now = clock::now();
    auto wait = std::chrono::milliseconds(wedged_ ? 100 : 1000);
    for (auto& c : negotiating) {
      fds.push_back({c.fd, POLLIN, 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now);
      wait = std::clamp(left + std::chrono::milliseconds(1), std::chrono::milliseconds(0), wait);
    }
    int ready = ::poll(fds.data(), wedged_ ? 2 : fds.size(), static_cast<int>(wait.count()));
    reap_finished_workers();
    if (stopping_) {
      close_all();
      return;
    }
    if (wedged_) {
      // Connections wait unanswered in the backlog; poll wakes at once for
      // them, so sleep instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    now = clock::now();
    std::vector<negotiating_connection> still_negotiating;
    still_negotiating.reserve(negotiating.size());
    for (std::size_t i = 0; i < negotiating.size(); ++i) {
      auto& c = negotiating[i];
      auto progress = request_progress::waiting;
      if (ready > 0 && fds[i + 2].revents != 0)
        progress = check_request(c);
      if (progress == request_progress::waiting && now >= c.deadline) {
        log::warning(component, "closed a connection from " + c.peer +
                                    ": no complete association request within " +
                                    std::to_string(config_.dicom.acse_timeout_s) +
                                    " s (dicom.acse_timeout_s; " + std::to_string(c.received) +
                                    " of " + std::to_string(c.expected) + " bytes arrived)");
        progress = request_progress::dropped;
      }
      if (progress == request_progress::waiting)
        still_negotiating.push_back(std::move(c));
      else if (progress == request_progress::complete)
        start_association(std::move(c));
      else
        ::close(c.fd);
    }
    negotiating.swap(still_negotiating);
    if (ready > 0 && (fds[0].revents & POLLIN))
      accept_connection(negotiating);
  }
}

} // namespace dcmstreams::net
