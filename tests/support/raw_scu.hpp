#pragma once
// A minimal DICOM upper-layer client written for tests, without DCMTK: it
// sends any bytes as a data set (malformed, truncated, crafted), which DCMTK's
// own senders refuse to do because they parse first.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::fixtures {

struct proposed_context {
  std::string abstract_syntax;
  std::string transfer_syntax;
};

/// A TCP connection to host:port with TCP_NODELAY set; -1 if it failed.
int connect_tcp(const std::string& host, std::uint16_t port);
/// Connections a test holds open, closed at the end of its scope.
struct closing_fds {
  std::vector<int> fds;
  closing_fds() = default;
  closing_fds(const closing_fds&) = delete;
  closing_fds& operator=(const closing_fds&) = delete;
  ~closing_fds();
};
/// Writes all of `data`; false if the connection broke.
bool send_all(int fd, const std::string& data);
/// The bytes of an A-ASSOCIATE-RQ PDU. `implementation_uid` may be longer than
/// the 64 bytes PS3.8 allows, to craft a malformed request.
std::string association_request_pdu(const std::string& calling_ae, const std::string& called_ae,
                                    const std::vector<proposed_context>& contexts,
                                    const std::string& implementation_uid = "1.2.3.4.5.6.7.8.9");
/// The type of the next PDU the peer sends (0x03 A-ASSOCIATE-RJ, 0x07
/// A-ABORT ...); 0 if the peer closed the connection first; nothing if it
/// sent nothing within `timeout`.
std::optional<std::uint8_t> next_pdu_type(int fd, std::chrono::milliseconds timeout);

class raw_association {
public:
  /// Connects and negotiates; nothing if the connection or the association failed
  /// (`why` then says which).
  static std::optional<raw_association> open(const std::string& host, std::uint16_t port,
                                             const std::string& calling_ae,
                                             const std::string& called_ae,
                                             const std::vector<proposed_context>& contexts,
                                             std::string* why = nullptr);
  raw_association(raw_association&& other) noexcept;
  ~raw_association();

  /// Whether context number `index` (0-based, in proposal order) was accepted.
  bool accepted(std::size_t index) const;
  /// Sends a C-STORE with `dataset` as raw bytes on context `index` and returns
  /// the response status, or nothing if the association broke.
  std::optional<std::uint16_t> store(std::size_t index, const std::string& sop_class,
                                     const std::string& sop_instance, const std::string& dataset);
  /// C-ECHO on context `index`.
  std::optional<std::uint16_t> echo(std::size_t index);
  bool release();
  void abort();
  /// Sends `bytes` as they are (crafted PDUs).
  bool send_raw(const std::string& bytes) { return send_all(fd_, bytes); }
  int fd() const { return fd_; }

private:
  explicit raw_association(int fd) : fd_(fd) {}
  bool send_pdv(std::uint8_t context_id, bool command, const std::string& data);
  std::optional<std::uint16_t> read_response_status();

  int fd_ = -1;
  std::uint32_t peer_max_pdu_ = 16384;
  std::vector<std::uint8_t> context_ids_;
  std::vector<bool> accepted_;
  std::uint16_t next_message_id_ = 1;
};

} // namespace dcmstreams::fixtures
