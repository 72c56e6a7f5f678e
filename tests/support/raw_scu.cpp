#include "tests/support/raw_scu.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace dcmstreams::fixtures {

namespace {

void put_u8(std::string& out, std::uint8_t v) {
  out += static_cast<char>(v);
}
void put_be16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
void put_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> shift) & 0xff);
}
void put_le16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}
void put_le32(std::string& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8)
    out += static_cast<char>((v >> shift) & 0xff);
}
std::uint16_t get_be16(const std::string& s, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(s[at]) << 8) |
                                    static_cast<unsigned char>(s[at + 1]));
}
std::uint32_t get_be32(const std::string& s, std::size_t at) {
  return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
         (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
         (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) |
         std::uint32_t{static_cast<unsigned char>(s[at + 3])};
}
std::uint16_t get_le16(const std::string& s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) |
                                    (static_cast<unsigned char>(s[at + 1]) << 8));
}
std::uint32_t get_le32(const std::string& s, std::size_t at) {
  return std::uint32_t{static_cast<unsigned char>(s[at])} |
         (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 8) |
         (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 16) |
         (std::uint32_t{static_cast<unsigned char>(s[at + 3])} << 24);
}

std::string padded_ae(const std::string& title) {
  std::string s = title.substr(0, 16);
  s.resize(16, ' ');
  return s;
}

void put_item(std::string& out, std::uint8_t type, const std::string& value) {
  put_u8(out, type);
  put_u8(out, 0);
  put_be16(out, static_cast<std::uint16_t>(value.size()));
  out += value;
}

bool read_exact(int fd, std::string& out, std::size_t count) {
  out.resize(count);
  std::size_t got = 0;
  while (got < count) {
    auto n = ::recv(fd, out.data() + got, count - got, 0);
    if (n <= 0)
      return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads one PDU: type and body.
bool read_pdu(int fd, std::uint8_t& type, std::string& body) {
  std::string header;
  if (!read_exact(fd, header, 6))
    return false;
  type = static_cast<std::uint8_t>(header[0]);
  return read_exact(fd, body, get_be32(header, 2));
}

void put_element(std::string& out, std::uint16_t element, const std::string& value) {
  put_le16(out, 0x0000);
  put_le16(out, element);
  put_le32(out, static_cast<std::uint32_t>(value.size()));
  out += value;
}

std::string uid_value(std::string uid) {
  if (uid.size() % 2)
    uid += '\0';
  return uid;
}

std::string us_value(std::uint16_t v) {
  std::string s;
  put_le16(s, v);
  return s;
}

std::string command_set(std::uint16_t field, std::uint16_t message_id, const std::string& sop_class,
                        const std::string& sop_instance, bool with_dataset) {
  std::string body;
  put_element(body, 0x0002, uid_value(sop_class));
  put_element(body, 0x0100, us_value(field));
  put_element(body, 0x0110, us_value(message_id));
  if (field == 0x0001)
    put_element(body, 0x0700, us_value(0));
  put_element(body, 0x0800, us_value(with_dataset ? 0x0000 : 0x0101));
  if (!sop_instance.empty())
    put_element(body, 0x1000, uid_value(sop_instance));
  std::string out;
  std::string length;
  put_le32(length, static_cast<std::uint32_t>(body.size()));
  put_element(out, 0x0000, length);
  return out + body;
}

} // namespace

bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

closing_fds::~closing_fds() {
  for (int fd : fds)
    if (fd >= 0)
      ::close(fd);
}

int connect_tcp(const std::string& host, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string association_request_pdu(const std::string& calling_ae, const std::string& called_ae,
                                    const std::vector<proposed_context>& contexts,
                                    const std::string& implementation_uid) {
  std::string body;
  put_be16(body, 1);
  put_be16(body, 0);
  body += padded_ae(called_ae);
  body += padded_ae(calling_ae);
  body += std::string(32, '\0');
  put_item(body, 0x10, "1.2.840.10008.3.1.1.1");
  std::uint8_t id = 1;
  for (auto& context : contexts) {
    std::string item;
    put_u8(item, id);
    item += std::string(3, '\0');
    put_item(item, 0x30, context.abstract_syntax);
    put_item(item, 0x40, context.transfer_syntax);
    put_item(body, 0x20, item);
    id = static_cast<std::uint8_t>(id + 2);
  }
  std::string user;
  std::string max_length;
  put_be32(max_length, 65536);
  put_item(user, 0x51, max_length);
  put_item(user, 0x52, implementation_uid);
  put_item(body, 0x50, user);
  std::string pdu;
  put_u8(pdu, 0x01);
  put_u8(pdu, 0);
  put_be32(pdu, static_cast<std::uint32_t>(body.size()));
  return pdu + body;
}

std::optional<std::uint8_t> next_pdu_type(int fd, std::chrono::milliseconds timeout) {
  pollfd waiting{fd, POLLIN, 0};
  if (::poll(&waiting, 1, static_cast<int>(timeout.count())) <= 0)
    return std::nullopt;
  std::uint8_t type = 0;
  std::string body;
  if (!read_pdu(fd, type, body))
    return std::uint8_t{0};
  return type;
}

std::optional<raw_association> raw_association::open(const std::string& host, std::uint16_t port,
                                                     const std::string& calling_ae,
                                                     const std::string& called_ae,
                                                     const std::vector<proposed_context>& contexts,
                                                     std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<raw_association> {
    if (why)
      *why = reason;
    return std::nullopt;
  };
  int fd = connect_tcp(host, port);
  if (fd < 0)
    return fail("connect failed");
  raw_association assoc{fd};
  for (std::size_t i = 0; i < contexts.size(); ++i) {
    assoc.context_ids_.push_back(static_cast<std::uint8_t>(1 + 2 * i));
    assoc.accepted_.push_back(false);
  }
  if (!send_all(fd, association_request_pdu(calling_ae, called_ae, contexts)))
    return fail("sending the association request failed");

  std::uint8_t type = 0;
  std::string reply;
  if (!read_pdu(fd, type, reply))
    return fail("no answer to the association request");
  if (type == 0x03)
    return fail("association rejected: result " + std::to_string(int(reply[1])) + ", source " +
                std::to_string(int(reply[2])) + ", reason " + std::to_string(int(reply[3])));
  if (type != 0x02)
    return fail("unexpected PDU type " + std::to_string(type));
  std::size_t at = 68;
  while (at + 4 <= reply.size()) {
    auto item_type = static_cast<std::uint8_t>(reply[at]);
    auto length = get_be16(reply, at + 2);
    if (item_type == 0x21) {
      auto context_id = static_cast<std::uint8_t>(reply[at + 4]);
      bool ok = reply[at + 6] == 0;
      for (std::size_t i = 0; i < assoc.context_ids_.size(); ++i)
        if (assoc.context_ids_[i] == context_id)
          assoc.accepted_[i] = ok;
    } else if (item_type == 0x50) {
      std::size_t sub = at + 4;
      while (sub + 4 <= at + 4 + length) {
        auto sub_length = get_be16(reply, sub + 2);
        if (static_cast<std::uint8_t>(reply[sub]) == 0x51)
          assoc.peer_max_pdu_ = get_be32(reply, sub + 4);
        sub += 4 + sub_length;
      }
    }
    at += 4 + length;
  }
  if (assoc.peer_max_pdu_ == 0)
    assoc.peer_max_pdu_ = 1 << 20;
  return assoc;
}

raw_association::raw_association(raw_association&& other) noexcept
    : fd_(other.fd_), peer_max_pdu_(other.peer_max_pdu_),
      context_ids_(std::move(other.context_ids_)), accepted_(std::move(other.accepted_)),
      next_message_id_(other.next_message_id_) {
  other.fd_ = -1;
}

raw_association::~raw_association() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool raw_association::accepted(std::size_t index) const {
  return index < accepted_.size() && accepted_[index];
}

bool raw_association::send_pdv(std::uint8_t context_id, bool command, const std::string& data) {
  // A PDV item carries 6 bytes of header inside the PDU's maximum length.
  std::size_t fragment_size = std::max<std::size_t>(peer_max_pdu_ - 6, 2) & ~std::size_t{1};
  std::size_t offset = 0;
  do {
    std::size_t size = std::min(fragment_size, data.size() - offset);
    bool last = offset + size == data.size();
    std::string pdu;
    put_u8(pdu, 0x04);
    put_u8(pdu, 0);
    put_be32(pdu, static_cast<std::uint32_t>(size + 6));
    put_be32(pdu, static_cast<std::uint32_t>(size + 2));
    put_u8(pdu, context_id);
    put_u8(pdu, static_cast<std::uint8_t>((command ? 1 : 0) | (last ? 2 : 0)));
    pdu.append(data, offset, size);
    if (!send_all(fd_, pdu))
      return false;
    offset += size;
  } while (offset < data.size());
  return true;
}

std::optional<std::uint16_t> raw_association::read_response_status() {
  std::string command;
  for (;;) {
    std::uint8_t type = 0;
    std::string body;
    if (!read_pdu(fd_, type, body) || type != 0x04)
      return std::nullopt;
    std::size_t at = 0;
    bool last = false;
    while (at + 6 <= body.size()) {
      auto length = get_be32(body, at);
      auto header = static_cast<std::uint8_t>(body[at + 5]);
      command.append(body, at + 6, length - 2);
      last = (header & 0x01) && (header & 0x02);
      at += 4 + length;
    }
    if (last)
      break;
  }
  std::size_t at = 0;
  while (at + 8 <= command.size()) {
    auto element = get_le16(command, at + 2);
    auto length = get_le32(command, at + 4);
    if (element == 0x0900 && length == 2)
      return get_le16(command, at + 8);
    at += 8 + length;
  }
  return std::nullopt;
}

std::optional<std::uint16_t> raw_association::store(std::size_t index, const std::string& sop_class,
                                                    const std::string& sop_instance,
                                                    const std::string& dataset) {
  auto id = context_ids_.at(index);
  if (!send_pdv(id, true, command_set(0x0001, next_message_id_++, sop_class, sop_instance, true)) ||
      !send_pdv(id, false, dataset))
    return std::nullopt;
  return read_response_status();
}

std::optional<std::uint16_t> raw_association::echo(std::size_t index) {
  auto id = context_ids_.at(index);
  if (!send_pdv(id, true, command_set(0x0030, next_message_id_++, "1.2.840.10008.1.1", "", false)))
    return std::nullopt;
  return read_response_status();
}

bool raw_association::release() {
  std::string pdu;
  put_u8(pdu, 0x05);
  put_u8(pdu, 0);
  put_be32(pdu, 4);
  put_be32(pdu, 0);
  if (!send_all(fd_, pdu))
    return false;
  std::uint8_t type = 0;
  std::string body;
  bool ok = read_pdu(fd_, type, body) && type == 0x06;
  ::close(fd_);
  fd_ = -1;
  return ok;
}

void raw_association::abort() {
  std::string pdu;
  put_u8(pdu, 0x07);
  put_u8(pdu, 0);
  put_be32(pdu, 4);
  put_be32(pdu, 0);
  send_all(fd_, pdu);
  ::close(fd_);
  fd_ = -1;
}

} // namespace dcmstreams::fixtures
