#pragma once
// The server side of DICOM TLS for the listener (dicom.tls). DCMTK would do
// the TLS handshake and read the A-ASSOCIATE-RQ inside ASC_receiveAssociation,
// blocking, under the process-wide lock around dcmExternalSocketHandle: one
// peer that stops half-way through its handshake would stop every listener.
// So the accept thread drives each handshake without blocking, in the poll
// it already runs for plain connections, and reads the whole request through
// TLS before DCMTK sees the connection; DCMTK then gets, through a transport
// layer of its own kind, a TLS connection that serves that request from
// memory and the rest of the association from OpenSSL. Private to net/.

#include "net/association.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/error.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

typedef struct ssl_st SSL;

namespace dcmstreams::net {

/// One connection's handshake and association request, driven by the accept
/// thread whenever its socket is ready.
class tls_session {
public:
  enum class progress { waiting, complete, failed };
  tls_session(SSL* ssl, int fd, const dicom_tls_listener_config& config);
  ~tls_session();
  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;

  /// Goes on as far as the socket allows without blocking.
  progress advance();
  /// What poll must wait for: POLLIN or POLLOUT.
  short events() const { return events_; }
  /// Why it failed, for the log ("its certificate is not trusted: ..."),
  /// and as a code: caller_not_allowed (a certificate refused or missing),
  /// unsupported (plain DICOM), network_error (any other failure).
  const std::string& problem() const { return problem_; }
  ec reason() const { return reason_; }
  /// The client certificate's subject, "CN=..." or "no client certificate".
  const std::string& peer_identity() const { return identity_; }
  std::size_t received() const { return request_.size(); }
  std::size_t expected() const { return expected_; }

  /// The connection DCMTK reads: the buffered request first. The socket is
  /// made blocking again, as DCMTK expects.
  std::unique_ptr<DcmTransportConnection> into_connection();

private:
  progress fail(std::string why, ec reason = ec::network_error);
  bool certificate_allowed();

  SSL* ssl_;
  int fd_;
  const dicom_tls_listener_config& config_;
  bool peeked_ = false; // looked at the first byte: TLS, not plain DICOM
  bool handshaken_ = false;
  bool header_checked_ = false;
  short events_;
  std::string request_;
  std::size_t expected_ = pdu_header_bytes;
  std::string problem_;
  ec reason_ = ec::network_error;
  std::string identity_;
  std::string fingerprint_; // SHA-256 of the client certificate, hex
};

/// The listener's TLS: DCMTK's layer set up from dicom.tls (BCP 195 profile,
/// certificates), and the layer given to DCMTK's network that hands it the
/// connections whose requests the accept thread has read.
class tls_acceptor : public DcmTransportLayer {
public:
  /// The failure names the file that could not be used and why.
  static result<std::unique_ptr<tls_acceptor>> make(const dicom_tls_listener_config& config);

  /// A session for an accepted socket (made non-blocking here).
  std::unique_ptr<tls_session> begin(int fd);
  /// DCMTK gets `connection` when it asks for the connection of `fd`
  /// (createConnection) in the ASC_receiveAssociation that follows;
  /// withdraw() afterwards closes it if DCMTK never asked. Both are called
  /// under the listener's lock around that receive, so one is pending at most.
  void offer(int fd, std::unique_ptr<DcmTransportConnection> connection);
  void withdraw();

  DcmTransportConnection* createConnection(DcmNativeSocketType fd, OFBool secure) override;

private:
  tls_acceptor(const dicom_tls_listener_config& config, std::unique_ptr<DcmTLSTransportLayer> tls)
      : config_(config), tls_(std::move(tls)) {}
  dicom_tls_listener_config config_;
  std::unique_ptr<DcmTLSTransportLayer> tls_;
  int pending_fd_ = -1;
  std::unique_ptr<DcmTransportConnection> pending_;
};

} // namespace dcmstreams::net
