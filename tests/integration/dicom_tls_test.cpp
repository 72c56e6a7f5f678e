// The DICOM TLS listener (dicom.tls) against DCMTK's storescu and echoscu
// over TLS: studies arrive as over the plain port; certificates of another
// authority, missing ones, ones not on the allow-list and plain DICOM are
// refused with a log line that says why; silent, half-open and stalled TLS
// peers cost the node nothing but their own connection.

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/peers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_scu.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <iostream>
#include <set>

using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class dicom_tls : public ::testing::Test {
protected:
  void SetUp() override {
    node_identity = hospital.issue("node", "IP:127.0.0.1");
    modality = hospital.issue("modality", "DNS:modality.local");
    intruder = hospital.issue("intruder", "DNS:intruder.local");
    stranger = elsewhere.issue("modality", "DNS:modality.local");
  }

  // A node whose TLS listener takes certificates of the hospital's
  // authority; `more` are more members of dicom.tls.
  void start_node(const std::string& more = {}) {
    tls_port = free_port();
    node_options options;
    options.dicom_json =
        ", \"acse_timeout_s\": 4, \"tls\": {\"port\": " + std::to_string(tls_port) +
        ", \"certificate\": \"" + node_identity.certificate.string() + "\", \"key\": \"" +
        node_identity.key.string() + "\", \"ca\": \"" + hospital.certificate().string() + "\"" +
        more + "}";
    node = std::make_unique<test_node>(root.path(), options);
    write_stream(node->streams_dir(), "test", "TESTAE");
    node->start();
  }

  // storescu or echoscu over TLS with `identity` (none: anonymous TLS),
  // trusting the hospital's authority.
  std::vector<std::string> tls_options(const test_authority::issued* identity) const {
    std::vector<std::string> options;
    if (identity)
      options = {"+tls", identity->key.string(), identity->certificate.string()};
    else
      options = {"+tla"};
    options.insert(options.end(), {"+cf", hospital.certificate().string()});
    return options;
  }

  // The exit code; storescu's output goes to the test's log when it fails.
  int store(const test_authority::issued* identity, const fs::path& study) const {
    std::vector<std::string> argv{"storescu", "-ta", "5", "-aec", "TESTAE"};
    for (auto& option : tls_options(identity))
      argv.push_back(option);
    argv.insert(argv.end(), {"+sd", "+r", "127.0.0.1", std::to_string(tls_port), study.string()});
    auto result = run(argv, 60s);
    if (result.exit_code != 0)
      std::cerr << "storescu: " << result.output << "\n";
    return result.exit_code;
  }

  int echo(const test_authority::issued* identity) const {
    std::vector<std::string> argv{"echoscu", "-ta", "2", "-aec", "TESTAE"};
    for (auto& option : tls_options(identity))
      argv.push_back(option);
    argv.insert(argv.end(), {"127.0.0.1", std::to_string(tls_port)});
    return run(argv, 30s).exit_code;
  }

  double metric(const std::string& series) const {
    return metric_sample(http_get(node->web_port(), "/metrics").body, series);
  }

  temp_dir root, scratch;
  test_authority hospital{scratch.path() / "hospital"}, elsewhere{scratch.path() / "elsewhere"};
  test_authority::issued node_identity, modality, intruder, stranger;
  std::uint16_t tls_port = 0;
  std::unique_ptr<test_node> node;
};

} // namespace

TEST_F(dicom_tls, storescu_over_tls_stores_a_study_bit_exact_beside_the_plain_port) {
  start_node();
  EXPECT_TRUE(contains(node->log(), "listening for DICOM over TLS (bcp195-nd, client "
                                    "certificates required) on 127.0.0.1:" +
                                        std::to_string(tls_port)))
      << node->log();
  EXPECT_EQ(echo(&modality), 0) << node->log();
  auto study = synth_study(scratch.path() / "tls", 12, 64);
  ASSERT_EQ(store(&modality, study), 0) << node->log();
  ASSERT_TRUE(node->wait_for_finished_jobs(1, 30s)) << node->log();
  auto job = node->job_dirs().front();
  auto input = test_node::input_files(job);
  ASSERT_EQ(input.size(), 12u);
  std::map<std::string, std::string> sent;
  for (auto& file : files_under(study))
    sent[sop_instance_uid(file)] = dataset_bytes(file);
  for (auto& file : input) {
    auto uid = sop_instance_uid(file);
    ASSERT_EQ(sent.count(uid), 1u) << uid;
    EXPECT_TRUE(dataset_bytes(file) == sent[uid]) << "data set of " << uid << " changed";
  }
  expect_valid_dicom(input);
  EXPECT_EQ(test_node::job_info(job, "state"), "success");

  // The plain port goes on as before.
  send_synthetic_study(*node, scratch.path() / "plain", "TESTAE", 3);
  ASSERT_TRUE(node->wait_for_finished_jobs(2, 30s)) << node->log();
  EXPECT_EQ(test_node::input_files(node->job_dirs().back()).size(), 3u);
  EXPECT_FALSE(contains(node->log(), "refused a DICOM TLS connection")) << node->log();
}

TEST_F(dicom_tls, untrusted_missing_and_unlisted_certificates_and_plain_dicom_are_refused) {
  start_node(", \"allowed_certificates\": [\"modality\"]");
  auto study = synth_study(scratch.path() / "s", 3, 16);

  EXPECT_NE(store(&stranger, study), 0) << "a certificate of another authority";
  EXPECT_TRUE(node->wait_for_log("refused a DICOM TLS connection from 127.0.0.1: its "
                                 "certificate is not trusted",
                                 5s))
      << node->log();

  EXPECT_NE(store(nullptr, study), 0) << "no client certificate";
  EXPECT_TRUE(node->wait_for_log("it sent no client certificate, and "
                                 "dicom.tls.require_client_certificate asks for one",
                                 5s))
      << node->log();

  EXPECT_NE(store(&intruder, study), 0) << "the hospital's, but not on the allow-list";
  EXPECT_TRUE(node->wait_for_log("its certificate (CN=intruder, SHA-256 ", 5s) &&
              node->wait_for_log(") is not in dicom.tls.allowed_certificates", 1s))
      << node->log();

  EXPECT_NE(run({"storescu", "-ta", "5", "-aec", "TESTAE", "+sd", "+r", "127.0.0.1",
                 std::to_string(tls_port), study.string()},
                30s)
                .exit_code,
            0)
      << "plain DICOM to the TLS port";
  EXPECT_TRUE(node->wait_for_log("it sent a plain DICOM association request to the TLS port", 5s))
      << node->log();

  EXPECT_TRUE(node->job_dirs().empty());
  EXPECT_EQ(node->pending_instances(), 0u);
  EXPECT_EQ(metric("dcmstreams_dicom_tls_refused_total{reason=\"caller_not_allowed\"}"), 3);
  EXPECT_EQ(metric("dcmstreams_dicom_tls_refused_total{reason=\"unsupported\"}"), 1);

  // The allowed certificate gets in.
  ASSERT_EQ(store(&modality, study), 0) << node->log();
  ASSERT_TRUE(node->wait_for_finished_jobs(1, 30s)) << node->log();
  EXPECT_EQ(test_node::input_files(node->job_dirs().front()).size(), 3u);
}

TEST_F(dicom_tls, an_optional_client_certificate_lets_anonymous_tls_in) {
  start_node(", \"require_client_certificate\": false");
  auto study = synth_study(scratch.path() / "s", 2, 16);
  ASSERT_EQ(store(nullptr, study), 0) << node->log();
  EXPECT_NE(store(&stranger, study), 0) << "a certificate that is shown is still checked";
  EXPECT_TRUE(node->wait_for_log("its certificate is not trusted", 5s)) << node->log();
  ASSERT_TRUE(node->wait_for_finished_jobs(1, 30s)) << node->log();
}

TEST_F(dicom_tls, silent_half_open_and_stalled_handshakes_block_no_one) {
  start_node();
  closing_fds peers;
  // Silent connections; connections that stop inside their ClientHello.
  std::string client_hello_start{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03", 10};
  for (int i = 0; i < 40; ++i) {
    int fd = connect_tcp("127.0.0.1", tls_port);
    ASSERT_GE(fd, 0);
    if (i % 2 == 1) {
      ASSERT_TRUE(send_all(fd, client_hello_start));
    }
    peers.fds.push_back(fd);
  }
  // A client that completes its handshake, with a good certificate, and then
  // sends nothing: openssl s_client, kept open (-ign_eof).
  process stalled{{{"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(tls_port),
                    "-cert", modality.certificate.string(), "-key", modality.key.string(),
                    "-CAfile", hospital.certificate().string(), "-ign_eof"},
                   {},
                   {},
                   scratch.path() / "s_client.log"}};
  ASSERT_TRUE(eventually([&] { return contains(stalled.output(), "Verify return code: 0"); }, 10s))
      << stalled.output();

  // Ordinary TLS peers are served meanwhile, each within its own 2-5 s.
  EXPECT_EQ(echo(&modality), 0) << node->log();
  auto study = synth_study(scratch.path() / "s", 3, 16);
  EXPECT_EQ(store(&modality, study), 0) << node->log();
  EXPECT_EQ(echo(&modality), 0) << node->log();

  // Each is closed when its own acse_timeout_s has passed.
  for (int fd : peers.fds) {
    auto type = next_pdu_type(fd, 10s);
    ASSERT_TRUE(type) << "a silent TLS peer was never dropped";
  }
  EXPECT_TRUE(eventually([&] { return !stalled.running(); }, 10s))
      << "the stalled TLS client was never dropped: " << stalled.output();
  EXPECT_TRUE(node->wait_for_log("closed a TLS connection from 127.0.0.1: no complete association "
                                 "request within 4 s",
                                 5s))
      << node->log();
  EXPECT_TRUE(node->running());
  ASSERT_TRUE(node->wait_for_finished_jobs(1, 30s)) << node->log();
}

// Orthanc, an independent DICOM implementation, on both sides of TLS: it
// sends a study to the node's TLS listener with its own certificate, and
// receives a routed study from the node over TLS on its TLS-only port.
TEST_F(dicom_tls, orthanc_sends_to_the_tls_listener_and_receives_routed_results_over_tls) {
  auto orthanc_identity = hospital.issue("orthanc", "IP:127.0.0.1");
  tls_port = free_port();
  orthanc_peer orthanc{
      scratch.path(), "ORTHANC", "",
      ", \"DicomTlsEnabled\": true, \"DicomTlsCertificate\": \"" +
          orthanc_identity.certificate.string() + "\", \"DicomTlsPrivateKey\": \"" +
          orthanc_identity.key.string() + "\", \"DicomTlsTrustedCertificates\": \"" +
          hospital.certificate().string() +
          "\", \"DicomTlsRemoteCertificateRequired\": true, \"DicomModalities\": {\"node\": "
          "{\"AET\": \"TESTAE\", \"Host\": \"127.0.0.1\", \"Port\": " +
          std::to_string(tls_port) + ", \"UseDicomTls\": true}}"};

  node_options options;
  options.dicom_json = ", \"tls\": {\"port\": " + std::to_string(tls_port) +
                       ", \"certificate\": \"" + node_identity.certificate.string() +
                       "\", \"key\": \"" + node_identity.key.string() + "\", \"ca\": \"" +
                       hospital.certificate().string() + "\"}";
  options.extra_config =
      "\"destinations\": {\"orthanc\": {\"host\": \"127.0.0.1\", \"port\": " +
      std::to_string(orthanc.dicom_port()) + ", \"ae_title\": \"ORTHANC\", \"tls\": {\"ca\": \"" +
      hospital.certificate().string() + "\", \"certificate\": \"" +
      node_identity.certificate.string() + "\", \"key\": \"" + node_identity.key.string() + "\"}}}";
  options.routing_json = R"({"routing": [{"AETitleIn": "ROUTE", "RouteDirectory": "INPUT",
                                          "send": [{".*": "orthanc"}]}]})";
  node = std::make_unique<test_node>(root.path(), options);
  write_stream(node->streams_dir(), "test", "TESTAE");
  write_stream(node->streams_dir(), "route", "ROUTE");
  node->start();

  // Orthanc -> node, over TLS.
  auto study = synth_study(scratch.path() / "to-node", 4, 32);
  std::set<std::string> sent;
  for (auto& file : files_under(study)) {
    ASSERT_TRUE(contains(orthanc.upload(file), "\"Status\" : \"Success\"")) << file;
    sent.insert(sop_instance_uid(file));
  }
  auto answer = orthanc.post(
      "/modalities/node/store", R"({"Resources": [)" + [&] {
        std::string ids;
        for (auto& id : orthanc.instances())
          ids += (ids.empty() ? "\"" : ", \"") + id + "\"";
        return ids;
      }() + R"(], "Synchronous": true})");
  ASSERT_TRUE(contains(answer, "\"InstancesCount\" : 4")) << answer << "\n" << node->log();
  ASSERT_TRUE(node->wait_for_finished_jobs(1, 30s)) << node->log();
  std::set<std::string> received;
  for (auto& file : test_node::input_files(node->job_dirs().front()))
    received.insert(sop_instance_uid(file));
  EXPECT_EQ(received, sent);

  // node -> Orthanc, over TLS: a study sent to ROUTE by plain DICOM is routed.
  send_synthetic_study(*node, scratch.path() / "to-orthanc", "ROUTE", 3);
  EXPECT_TRUE(eventually([&] { return orthanc.instances().size() == 7; }, 60s))
      << orthanc.instances().size() << " instances in Orthanc\n"
      << node->log();
}
