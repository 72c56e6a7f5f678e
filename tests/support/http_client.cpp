#include "tests/support/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>

namespace dcmstreams::fixtures {

namespace {

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    sent += static_cast<std::size_t>(n);
  }
}

std::string request_text(const std::string& method, const std::string& target,
                         const std::string& body,
                         const std::map<std::string, std::string>& headers) {
  std::string text = method + " " + target + " HTTP/1.1\r\nConnection: close\r\n";
  // A test may send another Host (as a rebinding page would).
  if (!headers.count("Host"))
    text += "Host: 127.0.0.1\r\n";
  for (auto& [name, value] : headers)
    text += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return text + "\r\n" + body;
}

std::string dechunk(const std::string& body) {
  std::string out;
  std::size_t at = 0;
  while (at < body.size()) {
    auto line_end = body.find("\r\n", at);
    if (line_end == std::string::npos)
      break;
    auto size = std::stoul(body.substr(at, line_end - at), nullptr, 16);
    if (size == 0)
      break;
    out += body.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return out;
}

} // namespace

http_reply http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body,
                        const std::map<std::string, std::string>& headers) {
  http_reply reply;
  int fd = connect_to(port);
  if (fd < 0)
    return reply;
  send_all(fd, request_text(method, target, body, headers));
  std::string raw;
  char buffer[65536];
  for (;;) {
    auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0)
      break;
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12)
    return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  std::size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    auto end = raw.find("\r\n", at);
    auto line = raw.substr(at, end - at);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      reply.headers[name] = value;
    }
    at = end + 2;
  }
  reply.body = raw.substr(head_end + 4);
  if (reply.headers["transfer-encoding"] == "chunked")
    reply.body = dechunk(reply.body);
  return reply;
}

std::string read_events(std::uint16_t port, const std::string& target, std::size_t count,
                        int timeout_ms, const std::map<std::string, std::string>& headers) {
  int fd = connect_to(port);
  if (fd < 0)
    return {};
  send_all(fd, request_text("GET", target, {}, headers));
  std::string raw;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto events = [&] {
    std::size_t n = 0, at = 0;
    while ((at = raw.find("event: ", at)) != std::string::npos) {
      ++n;
      ++at;
    }
    return n;
  };
  while (events() < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
      break;
    char buffer[4096];
    auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0)
      break;
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return raw;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = user + ":" + password, out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

double metric_sample(const std::string& exposition, const std::string& series) {
  auto at = exposition.find("\n" + series + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(exposition.substr(at + series.size() + 2));
}

} // namespace dcmstreams::fixtures
