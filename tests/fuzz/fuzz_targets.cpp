#include "tests/fuzz/fuzz_targets.hpp"

#include "net/dicom_listener.hpp"
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/imaging/kernels.hpp"
#include "pipeline/routing/routing.hpp"
#include "streams/stream.hpp"
#include "web/auth.hpp"
#include "web/http.hpp"
#include "web/request_guard.hpp"
#include "web/upload.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace dcmstreams::fuzz {

namespace fs = std::filesystem;

void require(bool promise, const char* what) {
  if (promise)
    return;
  std::fprintf(stderr, "fuzz: broken promise: %s\n", what);
  std::abort();
}

int dataset(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes{reinterpret_cast<const char*>(data), size};
  auto header = read_instance_header(bytes, "fuzz");
  // A failure names where it came from: the listener answers with it.
  if (!header)
    require(header.error().message.rfind("fuzz", 0) == 0, "a failure names its source");
  return 0;
}

int json_readers(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  std::string_view text{reinterpret_cast<const char*>(data) + 1, size - 1};
  switch (data[0]) {
  case 'c':
    parse_node_config(text, "dcmstreams.json");
    break;
  case 'r':
    parse_routing(text, "routing.json", {});
    break;
  case 's':
    streams::parse_stream(text, "/nonexistent/fuzz-stream");
    break;
  case 'k':
    parse_kernel_step(text, "pipeline[0]");
    break;
  default: {
    // What the writer writes, the parser reads back as the same value.
    auto value = json::parse(text, "fuzz.json");
    if (!value)
      break;
    for (bool pretty : {false, true}) {
      auto again = json::parse(json::dump(*value, pretty), "again.json");
      require(static_cast<bool>(again), "written JSON parses");
      require(json::dump(*again) == json::dump(*value), "a round trip keeps the value");
    }
  }
  }
  return 0;
}

int http_request(const std::uint8_t* data, std::size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  web::http_request request;
  auto take_line = [&] {
    auto end = input.find('\n');
    auto line = input.substr(0, end);
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    return std::string(line);
  };
  auto first = take_line();
  auto space = first.find(' ');
  request.method = first.substr(0, space);
  request.target = space == std::string::npos ? "/" : first.substr(space + 1);
  for (auto line = take_line(); !line.empty(); line = take_line()) {
    auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    auto name = line.substr(0, colon);
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    request.headers[name] = value;
  }
  request.body = std::string(input);
  request.remote = "192.0.2.7";
  web::parse_target(request.target, request.path, request.query);

  web::request_guard_settings guard;
  guard.hostnames = {"node.example"};
  auto refused = web::guard_request(request, guard);
  if (refused)
    require(refused->status == 403 || refused->status == 421, "the guard answers 403 or 421");
  web::changes_state(request);

  // A node with one user: a session cookie or Basic credentials are looked at,
  // never a password check (that is the pool's, and slow on purpose).
  static web::authenticator auth{{user_config{
      "ada", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
      "admin"}}};
  auth.identify_quickly(request);

  auto type = request.headers.count("content-type") ? request.headers["content-type"] : "";
  for (auto& part : web::parse_multipart(request.body, type))
    require(part.offset + part.length <= request.body.size(), "a form part lies in the body");
  return 0;
}

int zip_upload(const std::uint8_t* data, std::size_t size) {
  static const fs::path root = [] {
    char pattern[] = "/tmp/dcmstreams-fuzz-XXXXXX";
    return fs::path(::mkdtemp(pattern));
  }();
  web::upload_source source{"COPYAE", "FUZZ", "192.0.2.7"};
  auto unpacked = web::unpack_upload(data, size, root, source, false, 0);
  if (unpacked)
    for (auto& [key, instance] : unpacked->instances) {
      // Every instance it kept lies inside the data folder, under its own name.
      auto relative = fs::path(instance.path).lexically_relative(root);
      require(!relative.empty() && *relative.begin() != "..", "an instance stays in the folder");
    }
  std::error_code ignored;
  for (auto& entry : fs::directory_iterator(root, ignored))
    fs::remove_all(entry.path(), ignored);
  return 0;
}

namespace {

/// What the fuzzed listener reports to: it admits the called AE title
/// "FUZZ" and keeps nothing.
class admitting_sink : public ingest_sink {
public:
  association_verdict admit(const association_request& request) override {
    return request.called_ae == "FUZZ" ? association_verdict::accept
                                       : association_verdict::unknown_called_ae;
  }
  void association_rejected(const association_request&, ec) override {}
  void tls_refused(const std::string&, ec) override {}
  void association_started(const association_request&) override {}
  void association_ended(const association_request&, association_end) override {}
  void instance_stored(const stored_instance&) override {}
  void store_failed(const association_request&, ec, const std::string&) override {}
};

/// A listener on a free loopback port, storing into a scratch data folder.
struct fuzzed_listener {
  fs::path data_dir;
  admitting_sink sink;
  std::unique_ptr<net::dicom_listener> listener;

  fuzzed_listener() {
    char pattern[] = "/tmp/dcmstreams-fuzz-dicom-XXXXXX";
    data_dir = ::mkdtemp(pattern);
    net::listener_config config;
    config.dicom.bind = "127.0.0.1";
    config.dicom.port = 0;
    config.dicom.acse_timeout_s = 1;
    config.dicom.dimse_timeout_s = 1;
    config.data_dir = data_dir;
    config.sync = sync_mode::none;
    listener = std::make_unique<net::dicom_listener>(config, sink);
    auto started = listener->start();
    require(!started, "the listener starts");
  }
};

} // namespace

int association(const std::uint8_t* data, std::size_t size) {
  static fuzzed_listener node;
  static std::size_t runs = 0;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(node.listener->port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  require(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0,
          "the listener accepts a connection");
  // Everything at once, then the end of what this peer says; the listener's
  // answer is read until it closes, so each input is done before the next.
  for (std::size_t sent = 0; sent < size;) {
    auto n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // the listener closed early (refused or aborted): fine
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buffer[4096];
  // dicom.acse_timeout_s and dicom.dimse_timeout_s are 1 s: the listener
  // holds no connection for long, even on a busy machine under ASan.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    int polled = ::poll(&ready, 1, static_cast<int>(std::max<long>(left.count(), 0)));
    // libFuzzer's -timeout watchdog is a SIGALRM every few seconds: a wait it
    // interrupts goes on (taking it for a held connection was this target's
    // only "finding" for a while).
    if (polled < 0 && errno == EINTR)
      continue;
    require(polled == 1, "the listener ends the connection within 15 s");
    if (::recv(fd, buffer, sizeof buffer, 0) <= 0)
      break;
  }
  ::close(fd);
  if (++runs % 1000 == 0) {
    std::error_code ignored;
    fs::remove_all(node.data_dir / "incoming", ignored);
  }
  return 0;
}

target find_target(std::string_view name) {
  if (name == "association")
    return association;
  if (name == "dataset")
    return dataset;
  if (name == "json_readers")
    return json_readers;
  if (name == "http_request")
    return http_request;
  if (name == "zip_upload")
    return zip_upload;
  return nullptr;
}

} // namespace dcmstreams::fuzz
