#include "net/storage_scu.hpp"

#include "net/stow_client.hpp"

#include "net/dicom_tls.hpp"

#include "pipeline/dicom/codecs.hpp"
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/log.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace dcmstreams::net {

namespace fs = std::filesystem;

namespace {

// DcmSCU takes a TLS layer through a protected member (DcmTLSSCU wraps it
// with its own file handling); the node sets the layer up itself.
class secure_capable_scu : public DcmSCU {
public:
  using DcmSCU::useSecureConnection;
};

struct worker_result {
  std::vector<file_outcome> outcomes;
  std::uint64_t bytes = 0;
  int associations = 0;
};

std::string hex_status(Uint16 value) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04X", value);
  return buffer;
}

std::string name_of_uid(const std::string& uid) {
  return dcmFindNameOfUID(uid.c_str(), uid.c_str());
}

std::string name_of_syntax(const std::string& uid) {
  DcmXfer xfer{uid.c_str()};
  return xfer.getXfer() == EXS_Unknown ? uid : std::string(xfer.getXferName());
}

const char* const explicit_le = UID_LittleEndianExplicitTransferSyntax;
const char* const implicit_le = UID_LittleEndianImplicitTransferSyntax;

bool is_uncompressed(const std::string& syntax) {
  return syntax == explicit_le || syntax == implicit_le ||
         syntax == UID_BigEndianExplicitTransferSyntax;
}

// A file to send, as its meta header describes it.
struct outgoing_file {
  fs::path path;
  std::string sop_class;
  std::string transfer_syntax;
  bool decodable = false; // this DCMTK can turn it into an uncompressed syntax
  std::uint64_t bytes = 0;
};

using context_set = std::set<std::pair<std::string, std::vector<std::string>>>;

// The presentation contexts a file needs: its own transfer syntax, alone, so
// that a peer that accepts it must take it (given a list, peers often pick
// the uncompressed syntax); and, as a separate context, the uncompressed
// syntaxes when the file can be decoded into them. A file this DCMTK cannot
// decode (JPEG 2000, MPEG, HEVC) is offered only as it is.
std::vector<std::vector<std::string>> contexts_for(const outgoing_file& file) {
  if (is_uncompressed(file.transfer_syntax)) {
    std::vector<std::string> syntaxes{file.transfer_syntax};
    for (const char* other : {explicit_le, implicit_le})
      if (file.transfer_syntax != other)
        syntaxes.emplace_back(other);
    return {syntaxes};
  }
  if (file.decodable)
    return {{file.transfer_syntax}, {explicit_le, implicit_le}};
  return {{file.transfer_syntax}};
}

// Sends one association's share of the files, reporting every file once.
class share_sender {
public:
  share_sender(const send_options& options, const file_outcome_handler& on_file, worker_result& out)
      : options_(options), on_file_(on_file), out_(out) {}

  void send(const std::vector<fs::path>& share) {
    std::vector<outgoing_file> files;
    for (auto& path : share)
      if (auto file = describe(path))
        files.push_back(std::move(*file));
    // Each round negotiates the contexts of as many files as 128 contexts
    // allow (PS3.8's limit per association) and sends them.
    std::size_t next = 0;
    while (next < files.size()) {
      context_set contexts;
      std::size_t end = next;
      for (; end < files.size(); ++end) {
        auto wanted = contexts;
        for (auto& syntaxes : contexts_for(files[end]))
          wanted.insert({files[end].sop_class, syntaxes});
        if (wanted.size() > 128 && end > next)
          break;
        contexts.swap(wanted);
      }
      if (!send_round(files, next, end, contexts))
        return;
      next = end;
    }
  }

private:
  void report(file_outcome outcome) {
    if (on_file_)
      on_file_(outcome);
    out_.outcomes.push_back(std::move(outcome));
  }

  std::optional<outgoing_file> describe(const fs::path& path) {
    auto meta = read_file_meta(path);
    if (!meta || meta->sop_class_uid.empty() || meta->transfer_syntax_uid.empty()) {
      report({path.string(), 0, false,
              "not a DICOM file that can be sent: " +
                  (meta ? std::string("its meta header has no SOP class or transfer syntax")
                        : meta.error().message)});
      return std::nullopt;
    }
    outgoing_file file;
    file.path = path;
    file.sop_class = meta->sop_class_uid;
    file.transfer_syntax = meta->transfer_syntax_uid;
    DcmXfer xfer{file.transfer_syntax.c_str()};
    file.decodable = xfer.getXfer() != EXS_Unknown &&
                     (!xfer.isEncapsulated() ||
                      DcmCodecList::canChangeCoding(xfer.getXfer(), EXS_LittleEndianExplicit));
    std::error_code error;
    file.bytes = fs::file_size(path, error);
    return file;
  }

  std::string peer() const {
    return options_.called_ae + "@" + options_.host + ":" + std::to_string(options_.port);
  }

  void configure(DcmSCU& scu) const {
    scu.setAETitle(options_.calling_ae.c_str());
    scu.setPeerHostName(options_.host.c_str());
    scu.setPeerPort(options_.port);
    scu.setPeerAETitle(options_.called_ae.c_str());
    scu.setMaxReceivePDULength(options_.max_pdu);
    scu.setACSETimeout(static_cast<Uint32>(options_.acse_timeout_s));
    scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    scu.setDIMSETimeout(static_cast<Uint32>(options_.dimse_timeout_s));
    scu.setConnectionTimeout(options_.acse_timeout_s);
    // Decodes a file for an uncompressed context when its own was refused.
    scu.setDatasetConversionMode(OFTrue);
  }

  T_ASC_PresentationContextID context_for(DcmSCU& scu, const outgoing_file& file) const {
    auto context =
        scu.findPresentationContextID(file.sop_class.c_str(), file.transfer_syntax.c_str());
    if (context == 0 && file.decodable)
      for (const char* fallback : {explicit_le, implicit_le})
        if (context == 0)
          context = scu.findPresentationContextID(file.sop_class.c_str(), fallback);
    return context;
  }

  // Sends files [first, end) on one association; false when nothing more
  // can be sent to this peer (every remaining file then has its outcome).
  bool send_round(const std::vector<outgoing_file>& files, std::size_t first, std::size_t end,
                  const context_set& contexts) {
    auto fail_from = [&](std::size_t from, const std::string& why) {
      for (std::size_t i = from; i < files.size(); ++i)
        report({files[i].path.string(), 0, false, why});
    };
    // Declared before the SCU, which uses it and does not own it.
    std::unique_ptr<DcmTLSTransportLayer> tls;
    if (options_.tls) {
      auto made = make_tls_layer(*options_.tls, NET_REQUESTOR);
      if (!made) {
        fail_from(first, "not sent to " + peer() + ": " + made.error().message);
        return false;
      }
      tls = std::move(*made);
    }
    secure_capable_scu scu;
    configure(scu);
    for (auto& [sop_class, syntaxes] : contexts) {
      OFList<OFString> list;
      for (auto& syntax : syntaxes)
        list.push_back(syntax.c_str());
      scu.addPresentationContext(sop_class.c_str(), list);
    }
    OFCondition cond = scu.initNetwork();
    // The layer goes into the network initNetwork made.
    if (cond.good() && tls)
      cond = scu.useSecureConnection(tls.get());
    if (cond.bad()) {
      fail_from(first, std::string("cannot start DICOM networking: ") + cond.text());
      return false;
    }
    ++out_.associations;
    cond = scu.negotiateAssociation();
    bool none_accepted = cond == NET_EC_NoAcceptablePresentationContexts;
    if (cond.bad() && !none_accepted) {
      fail_from(first, "association with " + peer() + (tls ? " over TLS" : "") +
                           " failed: " + cond.text() +
                           (tls ? std::string("; check that the destination's certificate is "
                                              "signed by tls.ca, and that the destination trusts "
                                              "the node's tls.certificate")
                                : std::string()));
      return false;
    }
    for (std::size_t i = first; i < end; ++i) {
      auto& file = files[i];
      auto context = none_accepted ? T_ASC_PresentationContextID{0} : context_for(scu, file);
      if (context == 0) {
        std::string why = "not sent: " + peer() + " accepted no presentation context for " +
                          name_of_uid(file.sop_class) + " in " +
                          name_of_syntax(file.transfer_syntax);
        if (!file.decodable)
          why += ", and this node cannot decode " + name_of_syntax(file.transfer_syntax) +
                 " to offer it in another transfer syntax";
        report({file.path.string(), 0, false, why});
        continue;
      }
      Uint16 status = 0;
      OFCondition sent;
      try {
        sent = scu.sendSTORERequest(context, file.path.c_str(), nullptr, status);
      } catch (const std::exception& e) {
        sent = makeOFCondition(OFM_dcmnet, 3, OF_error, e.what());
      }
      if (sent.bad()) {
        // A peer that let the timeout pass is hung or cut off: the association's
        // state is unknown, and waiting the timeout again for every further
        // file would hold the sender for files × timeout. Abort, and let the
        // retry policy try again later.
        if (sent == DIMSE_NODATAAVAILABLE || sent == DUL_READTIMEOUT) {
          scu.abortAssociation();
          fail_from(i, "not sent: " + peer() + " did not answer within " +
                           std::to_string(options_.dimse_timeout_s) +
                           " s (sending.timeout_s); the association was aborted");
          return false;
        }
        if (!scu.isConnected()) {
          fail_from(i, "the association with " + peer() + " broke: " + sent.text());
          return false;
        }
        report({file.path.string(), 0, false, std::string("not sent: ") + sent.text()});
        continue;
      }
      file_outcome outcome{file.path.string(), status, true, {}};
      if (is_warning_status(status))
        outcome.message = "stored with warning status 0x" + hex_status(status);
      else if (status != 0)
        outcome.message = "refused with status 0x" + hex_status(status);
      if (status == 0 || is_warning_status(status))
        out_.bytes += file.bytes;
      report(std::move(outcome));
    }
    if (!none_accepted)
      scu.releaseAssociation();
    return true;
  }

  const send_options& options_;
  const file_outcome_handler& on_file_;
  worker_result& out_;
};

void send_share(const std::vector<fs::path>& share, const send_options& options,
                const file_outcome_handler& on_file, worker_result& out) {
  share_sender{options, on_file, out}.send(share);
}

} // namespace

result<std::vector<fs::path>> collect_files(const std::vector<fs::path>& paths) {
  std::vector<fs::path> files;
  for (auto& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(path, error);
           !error && it != fs::recursive_directory_iterator(); it.increment(error))
        if (it->is_regular_file())
          found.push_back(it->path());
      if (error)
        return failure{ec::io_error,
                       path.string() + ": cannot list the folder: " + error.message()};
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(path, error)) {
      files.push_back(path);
    } else {
      return failure{ec::io_error, path.string() + ": no such file or folder"};
    }
  }
  return files;
}

result<send_report> send_files(const std::vector<fs::path>& files, const send_options& options,
                               file_outcome_handler on_file) {
  if (options.host.empty())
    return failure{ec::invalid_argument, "no host to send to"};
  if (options.associations < 1 || options.associations > 64)
    return failure{ec::invalid_argument, "--associations must be between 1 and 64"};
  ::setenv("TCP_NODELAY", "1", 0);
  register_dicom_codecs();
  int workers =
      std::min<int>(options.associations, static_cast<int>(std::max<std::size_t>(files.size(), 1)));
  std::vector<std::vector<fs::path>> shares(static_cast<std::size_t>(workers));
  for (std::size_t i = 0; i < files.size(); ++i)
    shares[i % shares.size()].push_back(files[i]);
  std::vector<worker_result> results(shares.size());
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < shares.size(); ++i)
    threads.emplace_back([&, i] { send_share(shares[i], options, on_file, results[i]); });
  for (auto& t : threads)
    t.join();
  send_report report;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.files = files.size();
  for (auto& r : results) {
    report.bytes += r.bytes;
    report.associations_used += r.associations;
    for (auto& o : r.outcomes)
      report.count(o);
  }
  // Files that never got an outcome (the worker stopped early) count as failed.
  std::size_t accounted = report.succeeded + report.warnings + report.failed;
  if (accounted < report.files)
    report.failed += report.files - accounted;
  return report;
}

result<send_report> node_storage_client::send(const std::vector<fs::path>& files,
                                              const send_options& options,
                                              const file_outcome_handler& on_file) {
  if (options.dicomweb)
    return stow_files(files, *options.dicomweb, options.dimse_timeout_s, on_file);
  return send_files(files, options, on_file);
}

} // namespace dcmstreams::net
