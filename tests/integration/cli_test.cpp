// The command line as users meet it: help, version, check and serve errors.

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;

namespace {
std::string binary() {
  return dcmstreams_binary().string();
}
} // namespace

TEST(cli, version_and_help) {
  auto version = run({binary(), "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("dcmstreams 0.", 0), 0u) << version.output;
  auto help = run({binary(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (auto command : {"serve", "send", "synth", "check", "worker"})
    EXPECT_NE(help.output.find(command), std::string::npos);
  for (auto command : {"serve", "send", "synth", "check", "worker"}) {
    auto sub = run({binary(), command, "--help"});
    EXPECT_EQ(sub.exit_code, 0) << command;
    EXPECT_NE(sub.output.find(std::string("usage: dcmstreams ") + command), std::string::npos);
  }
  auto unknown = run({binary(), "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("unknown command 'frobnicate'"), std::string::npos);
  auto bad_option = run({binary(), "synth", "--rows", "many"});
  EXPECT_EQ(bad_option.exit_code, 2);
  EXPECT_NE(bad_option.output.find("--rows must be a whole number"), std::string::npos)
      << bad_option.output;
}

TEST(cli, check_accepts_the_bundled_streams) {
  auto checked = run({binary(), "check", "--streams", (source_dir() / "streams/library").string(),
                      "--routing", (source_dir() / "routing.json").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("everything is valid"), std::string::npos) << checked.output;
}

TEST(cli, check_names_file_key_and_fix) {
  temp_dir dir;
  write_stream(dir / "streams", "good", "GOOD");
  write_file(dir / "streams" / "bad" / "info.json", R"({"AETitle": "BAD", "command": ["true"],
    "group_by": "patient"})");
  write_file(dir / "routing.json", R"({"routing": [{"send": [{"success": {"IP": "1.2.3.4",
    "PORT": "x", "AETitleTo": "PACS"}}]}]})");
  auto checked = run({binary(), "check", "--streams", (dir / "streams").string(), "--routing",
                      (dir / "routing.json").string()});
  EXPECT_EQ(checked.exit_code, 1);
  auto& out = checked.output;
  EXPECT_NE(out.find((dir / "streams" / "bad" / "info.json").string() +
                     ": group_by: must be \"study\" or \"series\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("routing.json: routing[0].send[0].\"success\".PORT"), std::string::npos)
      << out;
  EXPECT_NE(out.find("stream good: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("2 problems"), std::string::npos) << out;
}

TEST(cli, check_refuses_what_serve_refuses_and_what_cannot_work) {
  temp_dir dir;
  write_stream(dir / "streams", "good", "GOOD");
  write_file(dir / "a-file", "not a folder");
  struct bad_config {
    std::string json;
    std::string message;
  };
  std::vector<bad_config> cases{
      {R"({"web": {"bind": "0.0.0.0"}})", "but web.users is empty"},
      {R"({"web": {"users": [{"name": "ada", "password_hash": "plaintext", "role": "admin"}]}})",
       "web.users[0].password_hash: is not an argon2 hash"},
      {R"({"data_dir": ")" + (dir / "a-file").string() + R"("})", "is a file, not a folder"},
      {R"({"destinations": {"pacs": {"host": "", "port": 104, "ae_title": "PACS"}}})",
       "destinations.pacs.host: is empty"},
      {R"({"destinations": {"pacs": {"host": "not a host!", "port": 104, "ae_title": "PACS"}}})",
       "\"not a host!\" is neither an IP address nor a DNS name"},
      {R"({"dicom": {"tls": {"port": 2762, "certificate": "missing.pem", "key": "missing.key",
           "ca": "ca.pem"}}})",
       "dicom.tls.certificate: " + (dir / "missing.pem").string() +
           " is not a file (PEM expected)"},
  };
  for (auto& bad : cases) {
    write_file(dir / "dcmstreams.json", bad.json);
    auto checked = run({binary(), "check", "--config", (dir / "dcmstreams.json").string(),
                        "--streams", (dir / "streams").string()});
    EXPECT_EQ(checked.exit_code, 1) << bad.json << "\n" << checked.output;
    EXPECT_TRUE(contains(checked.output, bad.message)) << bad.json << "\n" << checked.output;
    auto served = run({binary(), "serve", "--config", (dir / "dcmstreams.json").string(),
                       "--streams", (dir / "streams").string(), "--dicom-port",
                       std::to_string(free_port()), "--web-port", std::to_string(free_port())},
                      30s);
    EXPECT_NE(served.exit_code, 0) << bad.json;
    EXPECT_TRUE(contains(served.output, bad.message)) << bad.json << "\n" << served.output;
  }
  // Inline routing destinations are held to the same rule.
  write_file(dir / "routing.json", R"({"routing": [{"send": [{".*": {"IP": "", "PORT": 104,
    "AETitleTo": "PACS"}}, {".*": {"IP": "$caller", "PORT": 104, "AETitleTo": "BACK"}}]}]})");
  auto checked = run({binary(), "check", "--streams", (dir / "streams").string(), "--routing",
                      (dir / "routing.json").string()});
  EXPECT_EQ(checked.exit_code, 1);
  EXPECT_TRUE(contains(checked.output, "routing[0].send[0].\".*\".IP: is empty")) << checked.output;
  EXPECT_FALSE(contains(checked.output, "send[1]")) << "$caller is a valid IP\n" << checked.output;
}

TEST(cli, check_reports_a_broken_config_with_its_place) {
  temp_dir dir;
  write_file(dir / "dcmstreams.json", "{\n  \"dicom\": {\"port\": \"104\"}\n}\n");
  auto checked = run({binary(), "check", "--config", (dir / "dcmstreams.json").string()});
  EXPECT_EQ(checked.exit_code, 1);
  EXPECT_NE(checked.output.find("dicom.port: must be a whole number, not a string"),
            std::string::npos)
      << checked.output;
}

TEST(cli, serve_says_when_the_port_is_taken) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(free_port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  temp_dir dir;
  write_stream(dir / "streams", "test", "TESTAE");
  auto served =
      run({binary(), "serve", "--data", (dir / "data").string(), "--streams",
           (dir / "streams").string(), "--dicom-port", std::to_string(ntohs(address.sin_port))},
          30s);
  ::close(fd);
  EXPECT_EQ(served.exit_code, 1);
  EXPECT_NE(served.output.find("Address already in use"), std::string::npos) << served.output;
  EXPECT_NE(served.output.find("--dicom-port"), std::string::npos) << served.output;
}

TEST(cli, serve_names_a_missing_de_identification_secret_and_the_key) {
  temp_dir dir;
  write_stream(dir / "streams", "test", "TESTAE");
  write_file(dir / "dcmstreams.json",
             R"({"data_dir": "data", "streams_dir": "streams", "dicom": {"port": )" +
                 std::to_string(free_port()) + R"(}, "web": {"port": )" +
                 std::to_string(free_port()) + R"(}, "storage": {"reserve_free_mb": 1},
                 "deidentify": {"secret_file": "keys/missing.key"}})");
  auto served = run({binary(), "serve", "--config", (dir / "dcmstreams.json").string()}, 30s);
  EXPECT_EQ(served.exit_code, 1);
  EXPECT_NE(served.output.find((dir / "keys" / "missing.key").string()), std::string::npos)
      << served.output;
  EXPECT_NE(served.output.find("deidentify.secret_file"), std::string::npos) << served.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "keys" / "missing.key"))
      << "a named secret is never made up";
}

TEST(cli, serve_refuses_bad_arguments) {
  auto served = run({binary(), "serve", "--dicom-port", "0"});
  EXPECT_EQ(served.exit_code, 2);
  EXPECT_NE(served.output.find("--dicom-port must be a whole number from 1 to 65535"),
            std::string::npos)
      << served.output;
  temp_dir dir;
  write_file(dir / "bad.json", "{\"dicom\": {\"port\": 104,}}");
  served = run({binary(), "serve", "--config", (dir / "bad.json").string()});
  EXPECT_EQ(served.exit_code, 2);
  EXPECT_NE(served.output.find("bad.json:1:"), std::string::npos) << served.output;
}
