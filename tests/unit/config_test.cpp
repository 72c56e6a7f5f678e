#include "pipeline/foundation/config.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(node_config, defaults_work_from_a_checkout) {
  auto config = parse_node_config("{}", "dcmstreams.json");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->dicom.port, 11113);
  EXPECT_EQ(config->web.port, 2813);
  EXPECT_EQ(config->web.bind, "127.0.0.1");
  EXPECT_EQ(config->data_dir, "data");
  EXPECT_EQ(config->streams_dir, "streams/library");
  EXPECT_DOUBLE_EQ(config->completion.quiet_period_s, 15.0);
  EXPECT_EQ(config->completion.max_backlog, 20000u);
  EXPECT_EQ(config->storage.sync, sync_mode::instance);
}

TEST(node_config, reads_every_documented_key) {
  auto config = parse_node_config(R"({
    "ae_title": "NODE1",
    "dicom": {"port": 104, "bind": "127.0.0.1", "max_associations": 4,
              "allowed_callers": ["CT1", "@10.0.0.0/8", "MR1@192.168.1.7"],
              "acse_timeout_s": 10, "dimse_timeout_s": 20, "max_pdu": 65536},
    "web": {"port": 8080, "bind": "0.0.0.0",
            "users": [{"name": "ann", "password_hash": "$argon2id$x", "role": "admin"}]},
    "data_dir": "/srv/data", "streams_dir": "/srv/streams", "routing_file": "/srv/routing.json",
    "completion": {"quiet_period_s": 0.5, "max_wait_s": 600, "max_backlog": 500},
    "storage": {"sync": "association", "reserve_free_mb": 10, "scrub_high_pct": 95,
                "scrub_low_pct": 85, "retention_days": 30},
    "destinations": {"pacs": {"host": "10.0.0.9", "port": 4242, "ae_title": "ORTHANC",
                              "calling_ae_title": "NODE1", "associations": 4,
                              "transfer_syntax": "jpeg-ls"},
                     "research": {"host": "10.0.0.8", "port": 104, "ae_title": "RESEARCH",
                                  "deidentify": {"shift_dates": true}},
                     "registry": {"host": "10.0.0.7", "port": 104, "ae_title": "REG",
                                  "deidentify": true}},
    "cluster": {"port": 7000, "bind": "::1", "heartbeat_s": 0.5, "lost_after_s": 3, "head_slots": 0},
    "log": {"level": "debug"}})",
                                  "dcmstreams.json");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->ae_title, "NODE1");
  EXPECT_EQ(config->dicom.port, 104);
  EXPECT_EQ(config->dicom.max_associations, 4);
  EXPECT_EQ(config->dicom.allowed_callers.size(), 3u);
  EXPECT_EQ(config->dicom.max_pdu, 65536u);
  EXPECT_EQ(config->web.users.at(0).role, "admin");
  EXPECT_DOUBLE_EQ(config->completion.quiet_period_s, 0.5);
  EXPECT_EQ(config->completion.max_backlog, 500u);
  EXPECT_EQ(config->storage.sync, sync_mode::association);
  EXPECT_EQ(config->storage.reserve_free_mb, 10u);
  EXPECT_EQ(config->destinations.at("pacs").port, 4242);
  EXPECT_EQ(config->destinations.at("pacs").associations, 4);
  EXPECT_EQ(config->destinations.at("pacs").deidentify, "");
  EXPECT_EQ(config->destinations.at("research").deidentify, "shift_dates");
  EXPECT_EQ(config->destinations.at("registry").deidentify, "basic");
  EXPECT_EQ(config->cluster.port, 7000);
  EXPECT_EQ(config->cluster.bind, "::1");
  EXPECT_DOUBLE_EQ(config->cluster.heartbeat_s, 0.5);
  EXPECT_DOUBLE_EQ(config->cluster.lost_after_s, 3);
  EXPECT_EQ(config->cluster.head_slots, 0u);
  EXPECT_EQ(config->log_level, "debug");
}

TEST(node_config, the_cluster_port_is_opened_on_loopback_only_and_heartbeats_fit) {
  EXPECT_EQ(parse_node_config("{}", "n.json")->cluster.port, 0) << "no cluster unless asked";
  auto config = parse_node_config(
      R"({"cluster": {"port": 7000, "bind": "0.0.0.0", "heartbeat_s": 2, "lost_after_s": 2,
          "head_slots": -1}})",
      "n.json");
  ASSERT_FALSE(config);
  auto& message = config.error().message;
  EXPECT_NE(message.find("cluster.bind: \"0.0.0.0\" is not a loopback address"), std::string::npos)
      << message;
  EXPECT_NE(message.find("cluster.lost_after_s: must be longer than heartbeat_s"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("cluster.head_slots"), std::string::npos) << message;
  EXPECT_GE(parse_node_config("{}", "n.json")->cluster.head_slots, 1u)
      << "by default the head runs jobs too";
  auto over_tls = parse_node_config(
      R"({"cluster": {"port": 7000, "bind": "0.0.0.0",
          "tls": {"certificate": "h.pem", "key": "h.key", "ca": "ca.pem"}}})",
      "n.json");
  ASSERT_TRUE(over_tls) << over_tls.error().message;
  EXPECT_EQ(over_tls->cluster.bind, "0.0.0.0") << "with TLS any address may serve workers";
  EXPECT_EQ(over_tls->cluster.tls.ca, "ca.pem");
  auto half = parse_node_config(R"({"cluster": {"port": 7000, "tls": {"certificate": "h.pem"}}})",
                                "n.json");
  ASSERT_FALSE(half);
  EXPECT_NE(half.error().message.find("cluster.tls.key: is required for TLS"), std::string::npos)
      << half.error().message;
  EXPECT_TRUE(is_loopback_address("127.0.0.2"));
  EXPECT_FALSE(is_loopback_address("10.0.0.1"));
  EXPECT_FALSE(is_loopback_address("localhost")) << "an address, not a name that may resolve";
}

TEST(node_config, a_typo_names_the_key_and_suggests_the_right_one) {
  auto config = parse_node_config(R"({"dicom": {"prot": 104}})", "node.json");
  ASSERT_FALSE(config);
  EXPECT_NE(
      config.error().message.find("node.json: dicom.prot: unknown key; did you mean \"port\"?"),
      std::string::npos)
      << config.error().message;
}

TEST(node_config, every_problem_is_reported_with_its_key) {
  auto config = parse_node_config(
      R"({"dicom": {"port": 70000, "bind": 5}, "storage": {"sync": "sometimes"},
          "completion": {"quiet_period_s": -1}, "ae_title": "A\\B"})",
      "node.json");
  ASSERT_FALSE(config);
  auto& message = config.error().message;
  EXPECT_NE(message.find("dicom.port: must be between 1 and 65535, not 70000"), std::string::npos)
      << message;
  EXPECT_NE(message.find("dicom.bind: must be a string, not a number"), std::string::npos);
  EXPECT_NE(message.find("storage.sync: must be \"instance\", \"association\" or \"none\""),
            std::string::npos);
  EXPECT_NE(message.find("completion.quiet_period_s"), std::string::npos);
  EXPECT_NE(message.find("ae_title: an AE title may hold only printable ASCII"), std::string::npos);
}

TEST(node_config, invalid_json_says_line_and_column) {
  auto config = parse_node_config("{\n  \"dicom\": {\"port\": 104,}\n}", "node.json");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("node.json:2:"), std::string::npos)
      << config.error().message;
  EXPECT_NE(config.error().message.find("comma before '}'"), std::string::npos);
}

TEST(node_config, allowed_callers_entries_are_checked) {
  auto config = parse_node_config(R"({"dicom": {"allowed_callers": ["@10.0.0.0/33"]}})", "n.json");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("dicom.allowed_callers"), std::string::npos);
}

TEST(node_config, folders_in_a_file_are_relative_to_that_file) {
  fixtures::temp_dir dir;
  fixtures::write_file(dir / "conf" / "dcmstreams.json",
                       R"({"data_dir": "data", "streams_dir": "/abs/streams"})");
  auto config = load_node_config(dir / "conf" / "dcmstreams.json");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->data_dir, dir / "conf" / "data");
  EXPECT_EQ(config->streams_dir, "/abs/streams");
}

TEST(node_config, a_missing_file_is_named) {
  auto config = load_node_config("/nonexistent/dcmstreams.json");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("/nonexistent/dcmstreams.json: cannot open"),
            std::string::npos);
}

TEST(ae_title, rules_of_the_standard) {
  EXPECT_FALSE(check_ae_title("STORESCP"));
  EXPECT_FALSE(check_ae_title("A B"));
  EXPECT_TRUE(check_ae_title(""));
  EXPECT_TRUE(check_ae_title("    "));
  EXPECT_TRUE(check_ae_title("ABCDEFGHIJKLMNOPQ"));
  EXPECT_TRUE(check_ae_title("A\\B"));
}

TEST(node_config, a_destination_over_tls_names_its_files_and_what_is_missing) {
  fixtures::temp_dir dir;
  fixtures::write_file(dir / "ca.pem", "x");
  fixtures::write_file(dir / "node.pem", "x");
  fixtures::write_file(dir / "node.key", "x");
  auto ca = (dir / "ca.pem").string(), certificate = (dir / "node.pem").string(),
       key = (dir / "node.key").string();
  auto good = parse_node_config(R"({"destinations": {"pacs": {"host": "10.0.0.9", "port": 2762,
      "ae_title": "PACS", "tls": {"ca": ")" +
                                    ca + R"(", "certificate": ")" + certificate + R"(", "key": ")" +
                                    key + R"("}}}})",
                                "dcmstreams.json");
  ASSERT_TRUE(good) << good.error().message;
  auto& tls = good->destinations.at("pacs").tls;
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->ca, ca);
  EXPECT_EQ(tls->key, key);
  EXPECT_FALSE(parse_node_config("{}", "x")->destinations.count("pacs"));

  auto bad = parse_node_config(R"({"destinations": {
      "a": {"host": "h", "port": 1, "ae_title": "A", "tls": {"certificate": ")" +
                                   certificate +
                                   R"("}},
      "b": {"host": "h", "port": 1, "ae_title": "B", "tls": {"ca": "/nowhere/ca.pem", "pin": 1}}}})",
                               "dcmstreams.json");
  ASSERT_FALSE(bad);
  auto& m = bad.error().message;
  EXPECT_NE(m.find("destinations.a.tls: needs \"ca\""), std::string::npos) << m;
  EXPECT_NE(m.find("destinations.a.tls: needs both \"certificate\" and \"key\""), std::string::npos)
      << m;
  EXPECT_NE(m.find("destinations.b.tls.ca: \"/nowhere/ca.pem\" is not a file"), std::string::npos)
      << m;
  EXPECT_NE(m.find("pin"), std::string::npos) << m;
}

TEST(node_config, the_dicom_tls_listener_needs_a_port_of_its_own_its_files_and_a_known_profile) {
  EXPECT_FALSE(parse_node_config("{}", "n.json")->dicom.tls) << "no TLS listener unless asked";
  auto config = parse_node_config(
      R"({"dicom": {"port": 11112, "tls": {"port": 2762, "certificate": "node.pem",
          "key": "node.key", "ca": "ca.pem", "allowed_certificates": ["modality"]}}})",
      "n.json");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(config->dicom.tls);
  EXPECT_EQ(config->dicom.tls->port, 2762);
  EXPECT_EQ(config->dicom.tls->profile, "bcp195-nd");
  EXPECT_TRUE(config->dicom.tls->require_client_certificate);
  EXPECT_EQ(config->dicom.tls->allowed_certificates, std::vector<std::string>{"modality"});

  auto wrong = parse_node_config(
      R"({"dicom": {"port": 2762, "tls": {"port": 2762, "certificate": "node.pem",
          "profile": "tls1.0"}}})",
      "n.json");
  ASSERT_FALSE(wrong);
  auto& message = wrong.error().message;
  for (auto part : {"dicom.tls.port: must differ from dicom.port (2762)",
                    "dicom.tls.profile: must be \"bcp195-nd\"",
                    "dicom.tls.certificate: the node's own \"certificate\" and \"key\"",
                    "dicom.tls.ca: is needed to check client certificates"})
    EXPECT_NE(message.find(part), std::string::npos) << part << "\n" << message;
  auto anonymous = parse_node_config(
      R"({"dicom": {"tls": {"port": 2762, "certificate": "n.pem", "key": "n.key",
          "require_client_certificate": false}}})",
      "n.json");
  EXPECT_TRUE(anonymous) << "without client certificates no authority is needed";
  auto no_port = parse_node_config(R"({"dicom": {"tls": {"certificate": "n.pem", "key": "n.key",
          "ca": "ca.pem"}}})",
                                   "n.json");
  ASSERT_FALSE(no_port);
  EXPECT_NE(no_port.error().message.find("dicom.tls.port: is needed"), std::string::npos)
      << no_port.error().message;
}

TEST(node_config, dicom_tls_files_are_relative_to_the_configuration_file) {
  fixtures::temp_dir dir;
  fixtures::write_file(dir / "conf" / "dcmstreams.json",
                       R"({"dicom": {"tls": {"port": 2762, "certificate": "tls/node.pem",
                           "key": "/etc/node.key", "ca": "tls/ca.pem"}}})");
  auto config = load_node_config(dir / "conf" / "dcmstreams.json");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->dicom.tls->certificate, (dir / "conf" / "tls" / "node.pem").string());
  EXPECT_EQ(config->dicom.tls->key, "/etc/node.key");
  EXPECT_EQ(config->dicom.tls->ca, (dir / "conf" / "tls" / "ca.pem").string());
}

TEST(node_config, a_dicomweb_destination_takes_its_host_and_port_from_its_url_and_checks_auth) {
  auto config = parse_node_config(
      R"({"destinations": {"archive": {"dicomweb": "https://pacs.example.org/dicom-web/",
          "auth": {"bearer_token": "t0k"}, "deidentify": {"shift_dates": true}}}})",
      "n.json");
  ASSERT_TRUE(config) << config.error().message;
  auto& archive = config->destinations.at("archive");
  ASSERT_TRUE(archive.dicomweb);
  EXPECT_EQ(archive.dicomweb->url, "https://pacs.example.org/dicom-web") << "no trailing slash";
  EXPECT_EQ(archive.host, "pacs.example.org");
  EXPECT_EQ(archive.port, 443);
  EXPECT_EQ(archive.dicomweb->bearer_token, "t0k");
  EXPECT_EQ(archive.deidentify, "shift_dates");

  auto wrong = parse_node_config(
      R"({"destinations": {"a": {"dicomweb": "ftp://x/", "ae_title": "X"},
                           "b": {"dicomweb": "http://x/", "auth": {"username": "u"}}}})",
      "n.json");
  ASSERT_FALSE(wrong);
  auto& message = wrong.error().message;
  for (auto part : {"destinations.a.dicomweb:", "destinations.a.ae_title: unknown key",
                    "destinations.b.auth: needs \"username\" and \"password\" (HTTP Basic) or a "
                    "\"bearer_token\""})
    EXPECT_NE(message.find(part), std::string::npos) << part << "\n" << message;
}
