#include "net/tls_acceptor.hpp"

#include "net/association.hpp"
#include "net/dicom_tls.hpp"

#include <dcmtk/dcmtls/tlstrans.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

namespace dcmstreams::net {

namespace {

void set_blocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  if (code == 0)
    return {};
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "OpenSSL error " + std::to_string(code);
}

std::string hex(const unsigned char* bytes, unsigned length, const char* separator) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    if (i > 0)
      out += separator;
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

// An allow-list entry as a bare lower-case hex fingerprint, when it looks
// like one.
std::string as_fingerprint(const std::string& entry) {
  std::string out;
  for (char c : entry)
    if (c != ':')
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// What DCMTK reads: the association request the accept thread already
// read through TLS, then OpenSSL for the rest of the association. The
// handshake is done by then.
class buffered_tls_connection : public DcmTLSConnection {
public:
  buffered_tls_connection(int fd, SSL* ssl, std::string buffered)
      : DcmTLSConnection(fd, ssl), buffered_(std::move(buffered)) {}
  OFCondition serverSideHandshake() override { return EC_Normal; }
  ssize_t read(void* buffer, size_t length) override {
    if (offset_ >= buffered_.size())
      return DcmTLSConnection::read(buffer, length);
    length = std::min(length, buffered_.size() - offset_);
    std::memcpy(buffer, buffered_.data() + offset_, length);
    offset_ += length;
    return static_cast<ssize_t>(length);
  }
  OFBool networkDataAvailable(int timeout) override {
    return offset_ < buffered_.size() || DcmTLSConnection::networkDataAvailable(timeout);
  }

private:
  std::string buffered_;
  std::size_t offset_ = 0;
};

} // namespace

// -- tls_session ----------------------------------------------------------------

tls_session::tls_session(SSL* ssl, int fd, const dicom_tls_listener_config& config)
    : ssl_(ssl), fd_(fd), config_(config), events_(POLLIN) {}

tls_session::~tls_session() {
  if (ssl_)
    SSL_free(ssl_);
}

tls_session::progress tls_session::fail(std::string why, ec reason) {
  problem_ = std::move(why);
  reason_ = reason;
  ERR_clear_error();
  return progress::failed;
}

tls_session::progress tls_session::advance() {
  if (!handshaken_) {
    if (!peeked_) {
      // A TLS connection starts with a handshake record (22); a plain DICOM
      // peer sent to the wrong port starts with an A-ASSOCIATE-RQ (1).
      unsigned char first = 0;
      auto n = ::recv(fd_, &first, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0)
        return fail("it closed the connection before the TLS handshake");
      if (n < 0)
        return errno == EAGAIN || errno == EINTR
                   ? progress::waiting
                   : fail(std::string("cannot read: ") + std::strerror(errno));
      if (first == 0x01)
        return fail("it sent a plain DICOM association request to the TLS port; plain DICOM "
                    "goes to dicom.port, or the peer must use TLS (storescu +tls)",
                    ec::unsupported);
      peeked_ = true;
    }
    ERR_clear_error();
    int result = SSL_accept(ssl_);
    if (result != 1) {
      int error = SSL_get_error(ssl_, result);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        events_ = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return progress::waiting;
      }
      long verified = SSL_get_verify_result(ssl_);
      if (verified != X509_V_OK)
        return fail(std::string("its certificate is not trusted: ") +
                        X509_verify_cert_error_string(verified) + " (dicom.tls.ca)",
                    ec::caller_not_allowed);
      auto reason = openssl_reason();
      if (reason == "peer did not return a certificate")
        return fail("it sent no client certificate, and dicom.tls.require_client_certificate "
                    "asks for one",
                    ec::caller_not_allowed);
      return fail("the TLS handshake failed: " +
                  (reason.empty() ? std::string("the peer closed the connection") : reason));
    }
    handshaken_ = true;
    if (X509* certificate = SSL_get1_peer_certificate(ssl_)) {
      char name[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, name,
                                sizeof name);
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned length = 0;
      X509_digest(certificate, EVP_sha256(), digest, &length);
      X509_free(certificate);
      identity_ = std::string("CN=") + name;
      fingerprint_ = hex(digest, length, "");
    } else {
      identity_ = "no client certificate";
    }
    if (!certificate_allowed())
      return fail(fingerprint_.empty()
                      ? "it sent no client certificate, and dicom.tls.allowed_certificates "
                        "names the ones that may connect"
                      : "its certificate (" + identity_ + ", SHA-256 " + fingerprint_ +
                            ") is not in dicom.tls.allowed_certificates",
                  ec::caller_not_allowed);
  }
  while (request_.size() < expected_) {
    char buffer[16384];
    int wanted = static_cast<int>(std::min(sizeof buffer, expected_ - request_.size()));
    ERR_clear_error();
    int n = SSL_read(ssl_, buffer, wanted);
    if (n <= 0) {
      int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        events_ = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return progress::waiting;
      }
      return fail("it closed the connection after " + std::to_string(request_.size()) + " of the " +
                  std::to_string(expected_) + " bytes of its association request");
    }
    request_.append(buffer, static_cast<std::size_t>(n));
    if (!header_checked_ && request_.size() >= pdu_header_bytes) {
      header_checked_ = true;
      std::uint32_t length = 0;
      if (auto problem = association_request_problem(
              reinterpret_cast<const unsigned char*>(request_.data()), length)) {
        SSL_write(ssl_, provider_abort_pdu, sizeof provider_abort_pdu);
        return fail(*problem);
      }
      expected_ = pdu_header_bytes + length;
    }
  }
  return progress::complete;
}

bool tls_session::certificate_allowed() {
  auto& allowed = config_.allowed_certificates;
  if (allowed.empty())
    return true;
  if (fingerprint_.empty())
    return false;
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& entry) {
    return as_fingerprint(entry) == fingerprint_ || "CN=" + entry == identity_;
  });
}

std::unique_ptr<DcmTransportConnection> tls_session::into_connection() {
  set_blocking(fd_, true);
  return std::make_unique<buffered_tls_connection>(fd_, std::exchange(ssl_, nullptr),
                                                   std::move(request_));
}

// -- tls_acceptor ---------------------------------------------------------------

result<std::unique_ptr<tls_acceptor>> tls_acceptor::make(const dicom_tls_listener_config& config) {
  auto profile = config.profile == "bcp195"      ? TSP_Profile_BCP195
                 : config.profile == "bcp195-ex" ? TSP_Profile_BCP195_Extended
                                                 : TSP_Profile_BCP195_ND;
  auto verification = config.require_client_certificate ? DCV_requireCertificate
                      : config.ca.empty()               ? DCV_ignoreCertificate
                                                        : DCV_checkCertificate;
  auto layer = make_tls_layer({config.ca, config.certificate, config.key}, NET_ACCEPTOR, profile,
                              verification);
  if (!layer)
    return failure{layer.error().code, "dicom.tls: " + layer.error().message};
  return std::unique_ptr<tls_acceptor>(new tls_acceptor(config, std::move(*layer)));
}

std::unique_ptr<tls_session> tls_acceptor::begin(int fd) {
  set_blocking(fd, false);
  SSL* ssl = SSL_new(tls_->getNativeHandle());
  SSL_set_fd(ssl, fd);
  return std::make_unique<tls_session>(ssl, fd, config_);
}

void tls_acceptor::offer(int fd, std::unique_ptr<DcmTransportConnection> connection) {
  pending_fd_ = fd;
  pending_ = std::move(connection);
}

void tls_acceptor::withdraw() {
  pending_.reset();
  pending_fd_ = -1;
}

DcmTransportConnection* tls_acceptor::createConnection(DcmNativeSocketType fd, OFBool) {
  if (fd != pending_fd_ || !pending_)
    return nullptr;
  pending_fd_ = -1;
  return pending_.release();
}

} // namespace dcmstreams::net
