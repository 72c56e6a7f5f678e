#include "net/dicom_listener.hpp"

#include "net/association.hpp"
#include "net/tls_acceptor.hpp"

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
#include <dcmtk/dcmnet/dcmtrans.h>
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

std::string trim(const char* text) {
  std::string s{text};
  auto begin = s.find_first_not_of(' ');
  auto end = s.find_last_not_of(' ');
  return begin == std::string::npos ? std::string() : s.substr(begin, end - begin + 1);
}

void send_provider_abort(int fd) {
  if (fd >= 0) [[maybe_unused]]
    auto ignored =
        ::send(fd, provider_abort_pdu, sizeof provider_abort_pdu, MSG_NOSIGNAL | MSG_DONTWAIT);
}

} // namespace

// -- dicom_listener -------------------------------------------------------------

dicom_listener::dicom_listener(listener_config config, ingest_sink& sink)
    : config_(std::move(config)), sink_(sink), layout_(config_.data_dir),
      active_(config_.associations ? config_.associations
                                   : std::make_shared<std::atomic<std::size_t>>(0)) {}

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

  if (config_.over_tls) {
    auto acceptor = tls_acceptor::make(*config_.dicom.tls);
    if (!acceptor)
      return acceptor.error();
    tls_ = std::move(*acceptor);
  }
  std::string where = config_.dicom.bind + ":" + std::to_string(configured_port());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(configured_port());
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
    std::string hint = saved != EADDRINUSE ? ""
                       : config_.over_tls
                           ? "; another program listens there: stop it or set dicom.tls.port"
                           : "; another program listens there: stop it or set dicom.port / "
                             "--dicom-port";
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
  // DCMTK asks this layer for each connection's transport; it hands over the
  // ones whose handshake and request the accept thread has done.
  if (tls_)
    ASC_setTransportLayer(network, tls_.get(), 0);
  spare_files_ =
      std::make_unique<spare_file_pool>(layout_.receive_dir(), "receive", spare_file_count);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0)
    return failure{ec::io_error, "cannot create a pipe: " + errno_text(errno)};
  stopping_ = false;
  accept_thread_ = std::thread([this] { accept_loop(); });
  std::string over_tls;
  if (tls_) {
    auto& tls = *config_.dicom.tls;
    over_tls = " over TLS (" + tls.profile + ", " +
               (tls.require_client_certificate ? "client certificates required"
                                               : "client certificates optional") +
               (tls.allowed_certificates.empty()
                    ? std::string{}
                    : ", " + std::to_string(tls.allowed_certificates.size()) + " allowed") +
               ")";
  }
  log::info(component, "listening for DICOM" + over_tls + " on " + config_.dicom.bind + ":" +
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
  tls_.reset();
  log::info(component,
            std::string("stopped listening for DICOM") + (config_.over_tls ? " over TLS" : ""));
}

status dicom_listener::restart() {
  std::lock_guard<std::mutex> guard{restart_mutex_};
  stop();
  if (auto port = bound_port_.load())
    configured_port() = port;
  wedged_ = false;
  return start();
}

std::uint16_t& dicom_listener::configured_port() {
  return config_.over_tls ? config_.dicom.tls->port : config_.dicom.port;
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
// buffer (over TLS: in `connection`, which `tls` hands to DCMTK). A request
// DCMTK cannot parse gets an A-ABORT.
// `slot`, where the connection holds one, is given back before that answer.
T_ASC_Association* receive_request(T_ASC_Network* network, int fd, const listener_config& config,
                                   const std::string& peer, association_slot* slot,
                                   tls_acceptor* tls = nullptr,
                                   std::unique_ptr<DcmTransportConnection> connection = {}) {
  T_ASC_Association* assoc = nullptr;
  OFCondition cond;
  {
    std::lock_guard<std::mutex> guard{external_socket_mutex};
    if (tls)
      tls->offer(fd, std::move(connection));
    try {
      dcmExternalSocketHandle.set(fd);
      cond =
          ASC_receiveAssociation(network, &assoc, static_cast<int>(config.dicom.max_pdu), nullptr,
                                 nullptr, tls != nullptr, DUL_NOBLOCK, config.dicom.acse_timeout_s);
    } catch (const std::exception& e) {
      cond = makeOFCondition(OFM_dcmnet, 1, OF_error, e.what());
    }
    dcmExternalSocketHandle.set(-1);
    // Within the lock: a connection DCMTK never took is closed before its
    // descriptor can be reused.
    if (tls)
      tls->withdraw();
  }
  if (cond.bad()) {
    log::warning(component, "aborted the association request from " + peer +
                                ", which cannot be parsed: " + cond.text());
    // DCMTK keeps the socket open in a failed association and closes it
    // when the association is dropped.
    if (slot)
      slot->give_back();
    // Over TLS the abort would have to go through TLS; the peer sees the
    // connection close.
    if (!tls)
      send_provider_abort(fd);
    if (assoc)
      release(assoc);
    else if (!tls)
      ::close(fd);
    return nullptr;
  }
  return assoc;
}

// Whether the peer has shut down its sending side (or the connection is gone).
bool peer_closed(int fd) {
  pollfd probe{fd, POLLRDHUP, 0};
  return ::poll(&probe, 1, 0) == 1 && (probe.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void set_receive_low_water_mark(int fd, std::size_t bytes) {
  int value = static_cast<int>(bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value);
}

} // namespace

void dicom_listener::refuse_busy(negotiating_connection& c) {
  auto& peer = c.peer;
  auto* assoc = c.tls ? receive_request(as_network(network_), c.fd, config_, peer, nullptr,
                                        tls_.get(), c.tls->into_connection())
                      : receive_request(as_network(network_), c.fd, config_, peer, nullptr);
  if (!assoc)
    return;
  auto peer_port = c.peer_port;
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
  // A peer that stopped sending before its request is whole never completes
  // it; and poll would report its socket readable at once, again and again.
  if (static_cast<std::size_t>(n) < pdu_header_bytes && peer_closed(c.fd)) {
    log::debug(component, "a connection from " + c.peer + " closed within its association request");
    return request_progress::dropped;
  }
  if (static_cast<std::size_t>(n) < pdu_header_bytes) {
    c.received = static_cast<std::size_t>(n);
    set_receive_low_water_mark(c.fd, pdu_header_bytes);
    return request_progress::waiting;
  }
  std::uint32_t length = 0;
  if (auto problem = association_request_problem(header, length)) {
    log::warning(component, "aborted a connection from " + c.peer + ": " + *problem);
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
  if (peer_closed(c.fd)) {
    log::warning(component, "dropped a connection from " + c.peer + ": it closed after " +
                                std::to_string(available) + " of the " + std::to_string(wanted) +
                                " bytes of its association request");
    return request_progress::dropped;
  }
  // Poll wakes again only when the whole request is there (or the peer
  // closes); the kernel grows the buffer to hold it.
  set_receive_low_water_mark(c.fd, wanted);
  c.received = static_cast<std::size_t>(available);
  c.expected = wanted;
  return request_progress::waiting;
}

dicom_listener::request_progress dicom_listener::check_tls_request(negotiating_connection& c) {
  auto progress = c.tls->advance();
  c.received = c.tls->received();
  c.expected = c.tls->expected();
  if (progress == tls_session::progress::waiting)
    return request_progress::waiting;
  if (progress == tls_session::progress::complete) {
    log::debug(component, "TLS connection from " + c.peer + " (" + c.tls->peer_identity() +
                              ") sent its association request");
    return request_progress::complete;
  }
  log::warning(component,
               "refused a DICOM TLS connection from " + c.peer + ": " + c.tls->problem());
  sink_.tls_refused(c.peer, c.tls->reason());
  return request_progress::dropped;
}

void dicom_listener::start_association(negotiating_connection c) {
  if (active_->load() >= static_cast<std::size_t>(config_.dicom.max_associations)) {
    refuse_busy(c);
    return;
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<DcmTransportConnection> connection;
  if (c.tls)
    connection = c.tls->into_connection();
  std::thread thread([this, slot = association_slot{*active_}, fd = c.fd, peer = c.peer,
                      peer_port = c.peer_port, done, connection = std::move(connection)]() mutable {
    auto* tls = connection ? tls_.get() : nullptr;
    if (auto* assoc = receive_request(as_network(network_), fd, config_, peer, &slot, tls,
                                      std::move(connection))) {
      association_request request{trim(assoc->params->DULparams.callingAPTitle),
                                  trim(assoc->params->DULparams.calledAPTitle), peer, peer_port};
      association_context context{config_, sink_, stopping_, *spare_files_, layout_};
      association handler{context, slot, assoc, fd, std::move(request)};
      handler.run();
      release(assoc);
    }
    slot.give_back();
    done->store(true);
  });
  std::lock_guard<std::mutex> guard{workers_mutex_};
  workers_.push_back({std::move(thread), done});
}

int dicom_listener::accept_connection(std::vector<negotiating_connection>& negotiating) {
  sockaddr_storage from{};
  socklen_t length = sizeof from;
  int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from), &length, SOCK_CLOEXEC);
  if (fd < 0)
    return errno;
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
  // Over TLS the handshake and the request are read through OpenSSL: no
  // low-water mark on the encrypted bytes.
  if (!tls_)
    set_receive_low_water_mark(fd, pdu_header_bytes);
  negotiating.push_back(
      {fd, host, peer_port,
       std::chrono::steady_clock::now() + std::chrono::seconds(config_.dicom.acse_timeout_s), 0,
       pdu_header_bytes, tls_ ? tls_->begin(fd) : nullptr});
  return 0;
}

// One thread accepts every connection and waits, in one poll, for each to
// send its whole A-ASSOCIATE-RQ before any DICOM code reads from it: a peer
// that is silent or trickles bytes holds nothing but its own descriptor and
// is dropped when its own dicom.acse_timeout_s runs out.
void dicom_listener::accept_loop() {
  using clock = std::chrono::steady_clock;
  std::vector<negotiating_connection> negotiating; // oldest first
  std::vector<pollfd> fds;
  // Out of descriptors, the connection stays in the backlog and poll reports
  // it again at once: accepting pauses instead of spinning a core.
  clock::time_point accept_resumes{};
  bool said_accept_fails = false;
  auto close_all = [&] {
    for (auto& c : negotiating)
      ::close(c.fd);
    negotiating.clear();
  };
  for (;;) {
    auto now = clock::now();
    bool accepting = now >= accept_resumes;
    fds.assign({{accepting ? listen_fd_ : -1, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}});
    auto wait = std::chrono::milliseconds(wedged_ || !accepting ? 100 : 1000);
    for (auto& c : negotiating) {
      fds.push_back({c.fd, c.tls ? c.tls->events() : short{POLLIN}, 0});
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
        progress = c.tls ? check_tls_request(c) : check_request(c);
      if (progress == request_progress::waiting && now >= c.deadline) {
        log::warning(component, "closed a " + std::string(c.tls ? "TLS " : "") +
                                    "connection from " + c.peer +
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
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      int error = accept_connection(negotiating);
      if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
        accept_resumes = clock::now() + std::chrono::milliseconds(100);
        if (!said_accept_fails)
          log::warning(component, "cannot accept DICOM connections: " + errno_text(error) +
                                      "; trying again every 100 ms (raise LimitNOFILE if this "
                                      "repeats)");
        said_accept_fails = true;
      } else if (error == 0) {
        said_accept_fails = false;
      }
    }
  }
}

} // namespace dcmstreams::net
