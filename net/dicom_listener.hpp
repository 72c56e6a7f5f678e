#pragma once
// The DICOM listener: accepts associations with DCMTK's low-level ASC_* API so
// that every storage SOP class and every transfer syntax DCMTK knows is
// accepted (no 128-context profile cap), answers C-ECHO, and keeps each
// C-STORE data set exactly as received, behind a file meta header: appended
// to the journal (group commit) or, when larger than a journal record, as a
// file in incoming/; durable before success is answered (DESIGN §6).
//
// Threads: one accept thread, which also waits for every connection's
// association request in one poll (a slow or silent peer blocks no one), and
// one thread per association, bounded by dicom.max_associations. Nothing here runs on CAF's
// scheduler; events go to the ingest_sink.

#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/foundation/spare_files.hpp"
#include "pipeline/jobs/ingest.hpp"
#include "pipeline/jobs/journal.hpp"
#include "pipeline/jobs/store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dcmstreams::net {

struct listener_config {
  dicom_config dicom;
  std::filesystem::path data_dir;
  sync_mode sync = sync_mode::instance;
  std::uint64_t reserve_free_bytes = 0;
  /// Where data sets up to its record limit become durable; larger ones (and
  /// all, without a journal) are stored as files in incoming/.
  journal* ingest_journal = nullptr;
  /// Listens on dicom.tls.port and speaks DICOM over TLS (dicom.tls).
  bool over_tls = false;
  /// Shared by listeners that share dicom.max_associations; empty: its own.
  std::shared_ptr<std::atomic<std::size_t>> associations;
};

class tls_acceptor;
class tls_session;

class dicom_listener {
public:
  dicom_listener(listener_config config, ingest_sink& sink);
  ~dicom_listener();
  dicom_listener(const dicom_listener&) = delete;
  dicom_listener& operator=(const dicom_listener&) = delete;

  /// Binds dicom.bind:dicom.port (dicom.tls.port over TLS) and starts accepting. The failure names
  /// the address and port ("port in use": stop the other program or pick another).
  status start();
  /// Stops accepting, aborts running associations at their next message and
  /// joins every thread. Idempotent.
  void stop();
  /// Stops and starts again on the port it had (for the watchdog). Pending
  /// associations are aborted; their peers send again.
  status restart();
  /// Test hook: the accept thread stops accepting, as a hung listener would.
  void wedge_for_test() { wedged_ = true; }

  std::uint16_t port() const { return bound_port_; }
  std::size_t active_associations() const { return active_->load(); }

private:
  struct worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  /// An accepted connection whose A-ASSOCIATE-RQ has not fully arrived.
  struct negotiating_connection {
    int fd = -1;
    std::string peer;
    std::uint16_t peer_port = 0;
    std::chrono::steady_clock::time_point deadline;
    std::size_t received = 0;         // bytes of the request buffered so far
    std::size_t expected = 0;         // bytes of the whole request, once its header is known
    std::unique_ptr<tls_session> tls; // over TLS: its handshake and request
  };
  enum class request_progress { waiting, complete, dropped };

  void accept_loop();
  /// 0, or the errno of a failed accept.
  int accept_connection(std::vector<negotiating_connection>& negotiating);
  request_progress check_request(negotiating_connection& c);
  request_progress check_tls_request(negotiating_connection& c);
  void start_association(negotiating_connection c);
  void reap_finished_workers();
  void refuse_busy(negotiating_connection& c);
  std::uint16_t& configured_port();

  listener_config config_;
  ingest_sink& sink_;
  store_layout layout_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<std::uint16_t> bound_port_{0};
  void* network_ = nullptr; // T_ASC_Network*, kept opaque to keep DCMTK out of this header
  std::thread accept_thread_;
  std::mutex workers_mutex_;
  std::list<worker> workers_;
  std::shared_ptr<std::atomic<std::size_t>> active_;
  std::unique_ptr<tls_acceptor> tls_; // over TLS
  std::atomic<bool> stopping_{false};
  std::atomic<bool> wedged_{false};
  std::mutex restart_mutex_;
  std::unique_ptr<spare_file_pool> spare_files_;
};

} // namespace dcmstreams::net
