#include "net/stow_client.hpp"

#include "build_info.hpp"
#include "net/http_connection.hpp"
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/json.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace dcmstreams::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t max_instances_per_request = 64;
constexpr std::uint64_t max_bytes_per_request = 256ull << 20;
constexpr std::size_t piece_bytes = 64 << 10;
// PS3.18 Failure Reason "processing failure", for files the answer leaves out.
constexpr std::uint16_t processing_failure = 0x0110;

struct part {
  fs::path path;
  std::string sop_uid;
  std::uint64_t bytes = 0;
};

std::string base64(const std::string& text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(text.data()),
                               static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

std::string random_boundary() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof bytes);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "dcmstreams-";
  for (auto b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// The first value of an attribute of a DICOM JSON item: "00081155" → UID.
std::string first_string(const json::value& item, const char* tag) {
  auto attribute = item.find(tag);
  if (attribute == item.end() || !attribute->is_object())
    return {};
  auto values = attribute->find("Value");
  if (values == attribute->end() || !values->is_array() || values->empty())
    return {};
  auto& first = values->front();
  if (first.is_string())
    return first.get<std::string>();
  if (first.is_number_unsigned())
    return std::to_string(first.get<std::uint64_t>());
  return {};
}

const json::value* sequence_items(const json::value& response, const char* tag) {
  auto attribute = response.find(tag);
  if (attribute == response.end() || !attribute->is_object())
    return nullptr;
  auto values = attribute->find("Value");
  return values != attribute->end() && values->is_array() ? &*values : nullptr;
}

std::string hex4(std::uint16_t value) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%04X", value);
  return text;
}

struct stow_answer {
  int status = 0;
  std::string reason; // the status line's words
  std::string body;
};

// Writes one multipart request, streamed from the parts' files, and reads
// the answer.
template <class Stream>
result<stow_answer> post_parts(Stream& stream, beast::tcp_stream& timed, const http_url& url,
                               const dicomweb_target& target, const std::vector<part>& parts,
                               std::chrono::steady_clock::duration deadline,
                               const http_step_failure& fail) {
  auto boundary = random_boundary();
  std::string part_head = "--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n";
  std::string tail = "--" + boundary + "--\r\n";
  std::uint64_t length = tail.size();
  for (auto& p : parts)
    length += part_head.size() + p.bytes + 2;

  http::request<http::buffer_body> request{http::verb::post, url.target + "/studies", 11};
  request.set(http::field::host, url.host);
  request.set(http::field::user_agent, std::string{"dcmstreams/"} + build_info::version);
  request.set(http::field::content_type,
              "multipart/related; type=\"application/dicom\"; boundary=" + boundary);
  request.set(http::field::accept, "application/dicom+json");
  request.set(http::field::connection, "close");
  if (!target.bearer_token.empty())
    request.set(http::field::authorization, "Bearer " + target.bearer_token);
  else if (!target.username.empty())
    request.set(http::field::authorization,
                "Basic " + base64(target.username + ":" + target.password));
  request.content_length(length);
  request.body().data = nullptr;
  request.body().more = true;
  http::request_serializer<http::buffer_body> serializer{request};
  beast::error_code error;
  timed.expires_after(deadline);
  http::write_header(stream, serializer, error);
  if (error)
    return fail("sending to", error);
  auto send = [&](const void* data, std::size_t size) {
    request.body().data = const_cast<void*>(data);
    request.body().size = size;
    request.body().more = true;
    timed.expires_after(deadline);
    http::write(stream, serializer, error);
    if (error == http::error::need_buffer)
      error = {};
    return !error;
  };
  std::vector<char> piece(piece_bytes);
  for (auto& p : parts) {
    if (!send(part_head.data(), part_head.size()))
      return fail("sending to", error);
    int fd = ::open(p.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return failure{ec::io_error, "cannot read " + p.path.string() + ": " + std::strerror(errno)};
    std::uint64_t left = p.bytes;
    while (left > 0) {
      auto n = ::read(fd, piece.data(), std::min<std::uint64_t>(piece.size(), left));
      if (n <= 0) {
        ::close(fd);
        return failure{ec::io_error, "cannot read " + p.path.string() + ": " +
                                         (n == 0 ? "it became shorter" : std::strerror(errno))};
      }
      if (!send(piece.data(), static_cast<std::size_t>(n))) {
        ::close(fd);
        return fail("sending to", error);
      }
      left -= static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    if (!send("\r\n", 2))
      return fail("sending to", error);
  }
  if (!send(tail.data(), tail.size()))
    return fail("sending to", error);
  request.body().data = nullptr;
  request.body().more = false;
  http::write(stream, serializer, error);
  if (error)
    return fail("sending to", error);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> response;
  response.body_limit(64 << 20);
  timed.expires_after(deadline);
  http::read(stream, buffer, response, error);
  if (error)
    return fail("reading the answer of", error);
  auto& message = response.get();
  return stow_answer{static_cast<int>(message.result_int()), std::string(message.reason()),
                     message.body()};
}

// Each part's outcome from the service's answer.
std::vector<file_outcome> outcomes_of(const std::vector<part>& parts, const stow_answer& answer,
                                      const std::string& url) {
  std::vector<file_outcome> outcomes;
  auto status_text = "HTTP " + std::to_string(answer.status) + " " + answer.reason;
  bool store_response = answer.status == 200 || answer.status == 202 || answer.status == 409;
  auto parsed = store_response ? json::parse(answer.body, url) : result<json::value>{json::value{}};
  // A DICOM JSON response is one object (some services wrap it in an array).
  const json::value* response = nullptr;
  if (parsed && parsed->is_object())
    response = &*parsed;
  else if (parsed && parsed->is_array() && !parsed->empty() && parsed->front().is_object())
    response = &parsed->front();
  if (!response) {
    std::string said = answer.body.substr(0, 200);
    for (auto& p : parts)
      outcomes.push_back(
          {p.path.string(), 0, false,
           url + " answered " + status_text +
               (store_response ? " without a Store Instances Response" : std::string{}) +
               (said.empty() ? "" : ": " + said)});
    return outcomes;
  }
  std::map<std::string, std::uint16_t> stored, refused; // SOP Instance UID → warning/failure
  if (auto* items = sequence_items(*response, "00081199"))
    for (auto& item : *items) {
      auto warning = first_string(item, "00081196");
      stored[first_string(item, "00081155")] =
          warning.empty() ? 0 : static_cast<std::uint16_t>(std::stoul(warning));
    }
  if (auto* items = sequence_items(*response, "00081198"))
    for (auto& item : *items) {
      auto reason = first_string(item, "00081197");
      refused[first_string(item, "00081155")] =
          reason.empty() ? processing_failure : static_cast<std::uint16_t>(std::stoul(reason));
    }
  for (auto& p : parts) {
    file_outcome outcome{p.path.string(), 0, true, {}};
    if (auto it = refused.find(p.sop_uid); it != refused.end()) {
      outcome.dimse_status = it->second == 0 ? processing_failure : it->second;
      outcome.message = "refused by " + url + " (" + status_text + ", Failure Reason " +
                        hex4(outcome.dimse_status) + ")";
    } else if (auto found = stored.find(p.sop_uid); found != stored.end()) {
      // A Warning Reason (0xB000 coercion, 0xB006 elements discarded, ...)
      // counts as a C-STORE warning does.
      outcome.dimse_status = found->second;
      if (found->second != 0)
        outcome.message = "Warning Reason " + hex4(found->second) + " from " + url;
    } else if (answer.status != 200) {
      outcome.dimse_status = processing_failure;
      outcome.message = url + " answered " + status_text + " and did not list this instance";
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

} // namespace

result<send_report> stow_files(const std::vector<fs::path>& files, const dicomweb_target& target,
                               double timeout_s, const file_outcome_handler& on_file) {
  auto url = parse_http_url(target.url);
  if (!url)
    return url.error();
  send_report report;
  report.files = files.size();
  report.associations_used = 1;
  auto started = std::chrono::steady_clock::now();
  auto record = [&](const file_outcome& outcome, std::uint64_t bytes) {
    report.count(outcome);
    if (outcome.sent && (outcome.dimse_status == 0 || is_warning_status(outcome.dimse_status)))
      report.bytes += bytes;
    if (on_file)
      on_file(outcome);
  };

  std::vector<part> batch;
  std::uint64_t batch_bytes = 0;
  auto flush = [&] {
    if (batch.empty())
      return;
    auto answer = with_http_connection<stow_answer>(
        target.url, *url, timeout_s, target.ca,
        "; a service with a private authority needs \"ca\" in its destination",
        [&](auto& stream, beast::tcp_stream& timed, auto deadline, const http_step_failure& fail) {
          return post_parts(stream, timed, *url, target, batch, deadline, fail);
        });
    if (!answer) {
      for (auto& p : batch)
        record({p.path.string(), 0, false, answer.error().message}, p.bytes);
    } else {
      auto outcomes = outcomes_of(batch, *answer, target.url);
      for (std::size_t i = 0; i < batch.size(); ++i)
        record(outcomes[i], batch[i].bytes);
    }
    batch.clear();
    batch_bytes = 0;
  };
  for (auto& file : files) {
    auto header = read_instance_header(file);
    struct stat info {};
    if (!header || ::stat(file.c_str(), &info) != 0) {
      record({file.string(), 0xC000, true,
              header ? "cannot read " + file.string() + ": " + std::strerror(errno)
                     : header.error().message},
             0);
      continue;
    }
    auto bytes = static_cast<std::uint64_t>(info.st_size);
    if (!batch.empty() &&
        (batch.size() == max_instances_per_request || batch_bytes + bytes > max_bytes_per_request))
      flush();
    batch.push_back({file, header->sop_instance_uid, bytes});
    batch_bytes += bytes;
  }
  flush();
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

} // namespace dcmstreams::net
