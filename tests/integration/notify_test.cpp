// A stream's notify (docs/streams.md): a job that ends is POSTed as JSON to
// a real HTTP server on loopback (Python's http.server, started by the
// test); a target that answers 500 is tried again; one that is not there
// is given up after its attempts, said in the job's log, and the job and
// the node are not affected.

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Answers 500 to the first `fail_first` POSTs, then 200; writes one JSON
// line per request: path, status given, body.
const char* hook_server = R"(
import http.server, json, sys
log, fail_first, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = 0
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        seen += 1
        status = 500 if seen <= fail_first else 200
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "status": status,
                                "type": self.headers.get("Content-Type"),
                                "body": body.decode()}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
if len(sys.argv) > 5:
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)
open(port_file, "w").write(str(server.server_port))
server.serve_forever()
)";

struct hook {
  fs::path log;
  std::unique_ptr<process> server;
  std::uint16_t port = 0;

  /// Plain HTTP, or https with the certificate and key given.
  hook(const fs::path& dir, int fail_first, const fs::path& certificate = {},
       const fs::path& key = {})
      : log(dir / "hook.log") {
    auto port_file = dir / "hook.port";
    std::vector<std::string> argv{
        "python3", "-c", hook_server, log.string(), std::to_string(fail_first), port_file.string()};
    if (!certificate.empty())
      argv.insert(argv.end(), {certificate.string(), key.string()});
    server = std::make_unique<process>(process_options{argv, {}, {}, dir / "hook.out"});
    EXPECT_TRUE(
        eventually([&] { return fs::exists(port_file) && fs::file_size(port_file) > 0; }, 10s));
    port = static_cast<std::uint16_t>(std::stoi(read_file(port_file)));
  }

  std::vector<json::value> requests() const {
    std::vector<json::value> seen;
    if (!fs::exists(log))
      return seen;
    std::istringstream lines{read_file(log)};
    for (std::string line; std::getline(lines, line);)
      if (auto parsed = json::parse(line, "hook.log"))
        seen.push_back(*parsed);
    return seen;
  }
};

std::string notify_json(const std::string& url, const std::string& on, const fs::path& ca = {}) {
  return "\"notify\": [{\"url\": \"" + url + "\", \"on\": " + on +
         (ca.empty() ? "" : ", \"ca\": \"" + ca.string() + "\"") + "}]";
}

} // namespace

TEST(notify, a_finished_job_is_posted_to_the_stream_s_url_as_json) {
  temp_dir root, scratch;
  hook receiver{scratch.path(), 0};
  test_node node{root.path()};
  auto url = "http://127.0.0.1:" + std::to_string(receiver.port) + "/hooks/dcm?source=node";
  write_stream(node.streams_dir(), "copy", "COPY",
               "\"command\": [\"/bin/true\"], " + notify_json(url, "[\"success\", \"failed\"]"));
  write_stream(node.streams_dir(), "quiet", "QUIET",
               "\"command\": [\"/bin/true\"], " + notify_json(url, "[\"failed\"]"));
  node.start();
  send_synthetic_study(node, scratch / "a", "COPY");
  send_synthetic_study(node, scratch / "b", "QUIET");
  ASSERT_TRUE(eventually([&] { return receiver.requests().size() == 1; }, 20s)) << node.log();
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 20s));
  std::this_thread::sleep_for(1s);
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u) << "a stream notified on failure only says nothing of success";
  auto& request = requests[0];
  EXPECT_EQ(request["path"], "/hooks/dcm?source=node");
  EXPECT_EQ(request["type"], "application/json");
  auto body = json::parse(request["body"].get<std::string>(), "body");
  ASSERT_TRUE(body);
  EXPECT_EQ((*body)["event"], "job.success");
  EXPECT_EQ((*body)["node"], "DCMSTREAMS");
  EXPECT_EQ((*body)["job"]["stream"], "copy");
  EXPECT_EQ((*body)["job"]["state"], "success");
  EXPECT_EQ((*body)["job"]["instances"], 2);
  auto job = (*body)["job"]["id"].get<int>();
  auto log = read_file(node.data_dir() / "jobs" / std::to_string(job) / "processing.log");
  EXPECT_TRUE(contains(log, "notified " + url + ": HTTP 200")) << log;
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_TRUE(
      contains(metrics, "dcmstreams_notifications_total{stream=\"copy\",result=\"delivered\"} 1"))
      << metrics;
}

TEST(notify, a_failing_target_is_tried_again_and_one_that_is_gone_does_not_touch_the_job) {
  temp_dir root, scratch;
  hook flaky{scratch.path(), 2};
  test_node node{root.path()};
  auto flaky_url = "http://127.0.0.1:" + std::to_string(flaky.port) + "/";
  auto gone_url = "http://127.0.0.1:" + std::to_string(free_port()) + "/nobody";
  write_stream(node.streams_dir(), "flaky", "FLAKY",
               "\"command\": [\"/bin/false\"], " + notify_json(flaky_url, "[\"failed\"]"));
  write_stream(node.streams_dir(), "gone", "GONE",
               "\"command\": [\"/bin/true\"], " + notify_json(gone_url, "[\"success\"]"));
  node.start();
  send_synthetic_study(node, scratch / "a", "FLAKY");
  send_synthetic_study(node, scratch / "b", "GONE");
  // 500, then after 1 s 500, then after 2 s 200.
  ASSERT_TRUE(eventually([&] { return flaky.requests().size() == 3; }, 20s)) << node.log();
  auto requests = flaky.requests();
  EXPECT_EQ(requests[2]["status"], 200);
  auto body = json::parse(requests[2]["body"].get<std::string>(), "body");
  ASSERT_TRUE(body);
  EXPECT_EQ((*body)["event"], "job.failed");
  auto flaky_job = std::to_string((*body)["job"]["id"].get<int>());
  auto gone_job = flaky_job == "1" ? "2" : "1";
  auto flaky_log = node.data_dir() / "jobs" / flaky_job / "processing.log";
  EXPECT_TRUE(
      eventually([&] { return contains(read_file(flaky_log), "HTTP 200 (attempt 3)"); }, 5s))
      << read_file(flaky_log);
  EXPECT_TRUE(contains(read_file(flaky_log), "it answered HTTP 500; trying again in 1.0 s"))
      << read_file(flaky_log);
  auto gone_log = node.data_dir() / "jobs" / gone_job / "processing.log";
  EXPECT_TRUE(eventually(
      [&] {
        return contains(read_file(gone_log), "could not notify " + gone_url + " in 3 attempts");
      },
      20s))
      << read_file(gone_log);
  EXPECT_TRUE(contains(read_file(gone_log), "connecting to 127.0.0.1")) << read_file(gone_log);
  EXPECT_EQ(test_node::job_info(node.data_dir() / "jobs" / gone_job, "state"), "success");
  auto metrics = http_get(node.web_port(), "/metrics").body;
  EXPECT_TRUE(
      contains(metrics, "dcmstreams_notifications_total{stream=\"gone\",result=\"failed\"} 1"))
      << metrics;
  EXPECT_EQ(http_get(node.web_port(), "/healthz").status, 200);
}

TEST(notify, an_https_target_is_posted_to_when_its_certificate_names_it_and_chains_to_the_ca) {
  temp_dir root, scratch;
  test_authority good_ca{scratch / "good"}, other_ca{scratch / "other"};
  auto good = good_ca.issue("target", "IP:127.0.0.1");
  auto other_name = other_ca.issue("target", "DNS:elsewhere.example");
  fs::create_directories(scratch / "a");
  fs::create_directories(scratch / "b");
  hook secure{scratch / "a", 0, good.certificate, good.key};
  hook misnamed{scratch / "b", 0, other_name.certificate, other_name.key};
  auto secure_url = "https://127.0.0.1:" + std::to_string(secure.port) + "/hooks";
  auto misnamed_url = "https://127.0.0.1:" + std::to_string(misnamed.port) + "/hooks";
  test_node node{root.path()};
  write_stream(node.streams_dir(), "trusted", "TRUSTED",
               "\"command\": [\"/bin/true\"], " +
                   notify_json(secure_url, "[\"success\"]", good_ca.certificate()));
  // The system's authorities do not know the test's: refused.
  write_stream(node.streams_dir(), "unknown", "UNKNOWN",
               "\"command\": [\"/bin/true\"], " + notify_json(secure_url, "[\"success\"]"));
  // Signed by the authority given, but for another host name: refused.
  write_stream(node.streams_dir(), "misnamed", "MISNAMED",
               "\"command\": [\"/bin/true\"], " +
                   notify_json(misnamed_url, "[\"success\"]", other_ca.certificate()));
  node.start();
  send_synthetic_study(node, scratch / "s1", "TRUSTED");
  send_synthetic_study(node, scratch / "s2", "UNKNOWN");
  send_synthetic_study(node, scratch / "s3", "MISNAMED");
  ASSERT_TRUE(node.wait_for_finished_jobs(3, 20s)) << node.log();
  auto metrics = [&] { return http_get(node.web_port(), "/metrics").body; };
  ASSERT_TRUE(eventually(
      [&] {
        auto text = metrics();
        return contains(text, "{stream=\"trusted\",result=\"delivered\"} 1") &&
               contains(text, "{stream=\"unknown\",result=\"failed\"} 1") &&
               contains(text, "{stream=\"misnamed\",result=\"failed\"} 1");
      },
      30s))
      << metrics() << node.log();
  auto requests = secure.requests();
  ASSERT_EQ(requests.size(), 1u) << "only the trusting stream's job reached the server";
  auto body = json::parse(requests[0]["body"].get<std::string>(), "body");
  ASSERT_TRUE(body);
  EXPECT_EQ((*body)["job"]["stream"], "trusted");
  EXPECT_TRUE(misnamed.requests().empty());
  std::map<std::string, std::string> logs;
  for (auto& dir : node.job_dirs())
    logs[test_node::job_info(dir, "stream")] = read_file(dir / "processing.log");
  EXPECT_TRUE(contains(logs["trusted"], "notified " + secure_url + ": HTTP 200"))
      << logs["trusted"];
  EXPECT_TRUE(contains(logs["unknown"], "certificate verify failed")) << logs["unknown"];
  EXPECT_TRUE(contains(logs["unknown"], "needs \"ca\" in the notify entry")) << logs["unknown"];
  EXPECT_TRUE(contains(logs["misnamed"], "TLS handshake")) << logs["misnamed"];
  EXPECT_TRUE(contains(logs["misnamed"], "IP address mismatch")) << logs["misnamed"];
}
