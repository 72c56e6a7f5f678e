#include "net/storage_scu.hpp"

#include "pipeline/codecs.hpp"
#include "pipeline/log.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dstorscu.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace dcmstreams::net {

namespace fs = std::filesystem;

namespace {

bool is_warning(Uint16 status) {
  return status == 0x0001 || (status & 0xf000) == 0xb000;
}

// Records what happened to every file of one association's share.
class reporting_scu : public DcmStorageSCU {
public:
  reporting_scu(std::vector<file_outcome>& outcomes, const file_outcome_handler& on_file)
      : outcomes_(outcomes), on_file_(on_file) {}

protected:
  void notifySOPInstanceSent(const TransferEntry& entry) override {
    file_outcome outcome;
    outcome.path = entry.Filename.getCharPointer();
    outcome.sent = entry.RequestSent;
    outcome.dimse_status = entry.ResponseStatusCode;
    if (!entry.RequestSent)
      outcome.message = "not sent: the peer accepted no presentation context for " +
                        std::string(dcmFindNameOfUID(entry.SOPClassUID.c_str(), "this SOP class")) +
                        " in " + entry.TransferSyntaxUID.c_str();
    else if (entry.ResponseStatusCode != 0 && !is_warning(entry.ResponseStatusCode))
      outcome.message = "refused with status 0x" + hex(entry.ResponseStatusCode);
    else if (is_warning(entry.ResponseStatusCode))
      outcome.message = "stored with warning status 0x" + hex(entry.ResponseStatusCode);
    if (on_file_)
      on_file_(outcome);
    outcomes_.push_back(std::move(outcome));
  }

private:
  static std::string hex(Uint16 value) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%04X", value);
    return buffer;
  }
  std::vector<file_outcome>& outcomes_;
  const file_outcome_handler& on_file_;
};

struct worker_result {
  std::vector<file_outcome> outcomes;
  std::uint64_t bytes = 0;
  int associations = 0;
};

void send_share(const std::vector<fs::path>& share, const send_options& options,
                const file_outcome_handler& on_file, worker_result& out) {
  reporting_scu scu{out.outcomes, on_file};
  // Outcomes found here, before DCMTK sends anything, are reported too.
  auto fail = [&](file_outcome outcome) {
    if (on_file)
      on_file(outcome);
    out.outcomes.push_back(std::move(outcome));
  };
  scu.setAETitle(options.calling_ae.c_str());
  scu.setPeerHostName(options.host.c_str());
  scu.setPeerPort(options.port);
  scu.setPeerAETitle(options.called_ae.c_str());
  scu.setMaxReceivePDULength(options.max_pdu);
  scu.setACSETimeout(static_cast<Uint32>(options.acse_timeout_s));
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(static_cast<Uint32>(options.dimse_timeout_s));
  scu.setConnectionTimeout(options.acse_timeout_s);
  scu.setDecompressionMode(DcmStorageSCU::DM_losslessOnly);
  // Without this DcmSCU refuses to change a data set's transfer syntax on
  // the way out, and decompression never happens.
  scu.setDatasetConversionMode(OFTrue);
  scu.setHaltOnUnsuccessfulStoreMode(OFFalse);
  scu.setHaltOnInvalidFileMode(OFFalse);
  // Propose the default transfer syntax beside each compressed one, as the
  // standard asks: a peer that takes only uncompressed data then gets the
  // instance decompressed (lossless codecs; lossy ones are sent as they are).
  scu.setAllowIllegalProposalMode(OFFalse);

  std::unordered_map<std::string, std::uint64_t> sizes;
  for (auto& file : share) {
    OFCondition cond;
    try {
      cond = scu.addDicomFile(file.c_str(), ERM_fileOnly, OFFalse);
    } catch (const std::exception& e) {
      cond = makeOFCondition(OFM_dcmnet, 2, OF_error, e.what());
    }
    if (cond.bad()) {
      fail({file.string(), 0, false,
            std::string("not a DICOM file that can be sent: ") + cond.text()});
      continue;
    }
    std::error_code error;
    sizes.emplace(file.string(), fs::file_size(file, error));
  }
  if (scu.getNumberOfSOPInstances() == 0)
    return;
  // Each round negotiates the contexts the next files need (at most 128 per
  // association) and sends what they allow. A round that sends nothing
  // cannot repeat more often than there are files.
  OFCondition cond;
  for (std::size_t round = 0; round <= sizes.size(); ++round) {
    cond = scu.addPresentationContexts();
    if (cond == NET_EC_NoPresentationContextsDefined)
      break;
    if (cond.bad())
      break;
    cond = scu.initNetwork();
    if (cond.bad()) {
      for (auto& [path, size] : sizes)
        fail({path, 0, false, std::string("network: ") + cond.text()});
      return;
    }
    ++out.associations;
    cond = scu.negotiateAssociation();
    if (cond.bad()) {
      std::string why = cond == NET_EC_NoAcceptablePresentationContexts
                            ? "the peer accepted none of the proposed presentation contexts"
                            : std::string("association with ") + options.called_ae + "@" +
                                  options.host + ":" + std::to_string(options.port) +
                                  " failed: " + cond.text();
      if (cond != NET_EC_NoAcceptablePresentationContexts) {
        // Nothing more can be sent: every remaining file failed for this reason.
        std::unordered_set<std::string> done;
        for (auto& o : out.outcomes)
          done.insert(o.path);
        for (auto& [path, size] : sizes)
          if (!done.count(path))
            fail({path, 0, false, why});
        return;
      }
      continue;
    }
    cond = scu.sendSOPInstances();
    if (cond.bad())
      log::warning("send", std::string("sending stopped: ") + cond.text());
    scu.releaseAssociation();
  }
  for (auto& o : out.outcomes)
    if (o.sent && (o.dimse_status == 0 || is_warning(o.dimse_status)))
      out.bytes += sizes[o.path];
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
    for (auto& o : r.outcomes) {
      if (o.sent && o.dimse_status == 0) {
        ++report.succeeded;
      } else if (o.sent && is_warning(o.dimse_status)) {
        ++report.warnings;
        report.problems.push_back(o);
      } else {
        ++report.failed;
        report.problems.push_back(o);
      }
    }
  }
  // Files that never got an outcome (the worker stopped early) count as failed.
  std::size_t accounted = report.succeeded + report.warnings + report.failed;
  if (accounted < report.files)
    report.failed += report.files - accounted;
  return report;
}

result<send_report> dcmtk_storage_client::send(const std::vector<fs::path>& files,
                                               const send_options& options,
                                               const file_outcome_handler& on_file) {
  return send_files(files, options, on_file);
}

} // namespace dcmstreams::net
