// Peers that misbehave during and after association negotiation: silent and
// trickling connections, malformed requests, aborted associations. Each must
// cost the node nothing but its own connection, while DCMTK's storescu and
// echoscu go on being served.

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_scu.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;

namespace {

const std::vector<proposed_context> echo_context{
    {UID_VerificationSOPClass, UID_LittleEndianImplicitTransferSyntax}};

std::unique_ptr<test_node> start_node(const temp_dir& root, node_options options) {
  auto node = std::make_unique<test_node>(root.path(), options);
  write_stream(node->streams_dir(), "test", "TESTAE");
  node->start();
  return node;
}

// echoscu that gives up if the association is not accepted within 2 s
// (its own ACSE timeout): a node that makes it wait fails this.
int echo_within_2s(const test_node& node) {
  return run({"echoscu", "-ta", "2", "-aec", "TESTAE", "127.0.0.1", std::to_string(node.port())})
      .exit_code;
}

} // namespace

TEST(hostile_peers,
     silent_and_trickling_connections_block_no_one_and_are_dropped_by_their_timeout) {
  temp_dir root, scratch;
  node_options options;
  options.dicom_json = ", \"acse_timeout_s\": 4";
  auto node = start_node(root, options);

  auto request = association_request_pdu("SLOW", "TESTAE", echo_context);
  closing_fds peers;
  for (int i = 0; i < 100; ++i) {
    int fd = connect_tcp("127.0.0.1", node->port());
    ASSERT_GE(fd, 0);
    // Half are silent; half send the first 10 bytes of a request and stop.
    if (i % 2 == 1) {
      ASSERT_TRUE(send_all(fd, request.substr(0, 10)));
    }
    peers.fds.push_back(fd);
  }
  // One more trickles a byte every 500 ms, as the attack did every 20 s.
  int trickler = connect_tcp("127.0.0.1", node->port());
  ASSERT_GE(trickler, 0);
  peers.fds.push_back(trickler);
  std::atomic<bool> stop_trickling{false};
  std::thread trickle([&] {
    for (std::size_t i = 0; i < request.size() - 1 && !stop_trickling; ++i) {
      if (!send_all(trickler, request.substr(i, 1)))
        return;
      std::this_thread::sleep_for(500ms);
    }
  });

  // Ordinary peers are served meanwhile, each well inside its own timeout.
  EXPECT_EQ(echo_within_2s(*node), 0);
  send_synthetic_study(*node, scratch / "study", "TESTAE", 3);
  EXPECT_EQ(echo_within_2s(*node), 0);

  // Each slow peer is closed when its own acse_timeout_s has passed.
  for (int fd : peers.fds) {
    auto type = next_pdu_type(fd, 10s);
    ASSERT_TRUE(type) << "a slow peer was never dropped";
    EXPECT_EQ(*type, 0) << "a slow peer got PDU " << int(*type) << " instead of a closed socket";
  }
  stop_trickling = true;
  trickle.join();
  auto log = node->log();
  EXPECT_TRUE(contains(log, "no complete association request within 4 s")) << log;
  EXPECT_TRUE(contains(log, "10 of")) << "the log says how much of the request arrived\n" << log;
  EXPECT_TRUE(node->running());
  EXPECT_EQ(echo_within_2s(*node), 0);
}

TEST(hostile_peers, malformed_association_requests_get_an_abort) {
  temp_dir root;
  auto node = start_node(root, {});

  // PS3.8 allows at most 64 bytes for the Implementation Class UID sub-item.
  int fd = connect_tcp("127.0.0.1", node->port());
  ASSERT_GE(fd, 0);
  closing_fds peers{{fd}};
  ASSERT_TRUE(
      send_all(fd, association_request_pdu("BAD", "TESTAE", echo_context, std::string(80, '1'))));
  auto answer = next_pdu_type(fd, 10s);
  ASSERT_TRUE(answer) << "the malformed request got no answer";
  EXPECT_TRUE(*answer == 0x03 || *answer == 0x07) << "PDU type " << int(*answer);

  // A connection whose first PDU is not an association request.
  int data_first = connect_tcp("127.0.0.1", node->port());
  ASSERT_GE(data_first, 0);
  peers.fds.push_back(data_first);
  ASSERT_TRUE(
      send_all(data_first, std::string("\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x01\x03", 12)));
  answer = next_pdu_type(data_first, 10s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(*answer, 0x07);

  // A request that claims to be larger than 1 MiB is not read at all.
  int huge = connect_tcp("127.0.0.1", node->port());
  ASSERT_GE(huge, 0);
  peers.fds.push_back(huge);
  ASSERT_TRUE(send_all(huge, std::string("\x01\x00\x10\x00\x00\x00", 6)));
  answer = next_pdu_type(huge, 10s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(*answer, 0x07);

  auto log = node->log();
  EXPECT_TRUE(contains(log, "cannot be parsed")) << log;
  EXPECT_TRUE(contains(log, "is not an A-ASSOCIATE-RQ")) << log;
  EXPECT_TRUE(contains(log, "is larger than 1048576")) << log;
  EXPECT_EQ(echo_within_2s(*node), 0);
}

TEST(hostile_peers, an_association_the_node_aborts_frees_its_slot_at_once) {
  temp_dir root;
  node_options options;
  options.max_associations = 2;
  auto node = start_node(root, options);

  // Three peers in turn send a P-DATA-TF whose PDV item claims more bytes
  // than its PDU holds, then keep their connections open without a word.
  std::vector<raw_association> aborted;
  for (int i = 0; i < 3; ++i) {
    std::string why;
    auto assoc =
        raw_association::open("127.0.0.1", node->port(), "ODD", "TESTAE", echo_context, &why);
    ASSERT_TRUE(assoc) << "peer " << i << ": " << why;
    ASSERT_TRUE(assoc->send_raw(
        std::string("\x04\x00\x00\x00\x00\x09\x00\x00\x00\x63\x01\x03\x00\x00\x00", 15)));
    auto answer = next_pdu_type(assoc->fd(), 10s);
    ASSERT_TRUE(answer) << "peer " << i << " got no A-ABORT";
    EXPECT_EQ(*answer, 0x07) << "peer " << i;
    aborted.push_back(std::move(*assoc));
  }
  // The slots are free again while those peers still hold their sockets open
  // (they were held for dicom.acse_timeout_s, 30 s, before).
  EXPECT_TRUE(eventually([&] { return echo_within_2s(*node) == 0; }, 5s)) << node->log();
  auto log = node->log();
  EXPECT_FALSE(contains(log, "association slots are busy")) << log;
}

TEST(hostile_peers, a_peer_that_stops_within_its_request_is_dropped_at_once_not_polled) {
  // A peer that sends part of its association request and then closes its
  // side can never complete it. Its socket reads as ready from then on: the
  // accept thread used to look at it again and again until the ACSE timeout
  // (30 s), a busy loop on one core. Found by the association fuzz target.
  temp_dir root;
  node_options options;
  // Dropped within the 10 s waited for below, so not by this timeout.
  options.dicom_json = ", \"acse_timeout_s\": 60";
  auto node = start_node(root, options);
  auto request = association_request_pdu("HALF", "TESTAE", echo_context);
  closing_fds peers;
  for (std::size_t cut : {std::size_t{3}, std::size_t{40}}) {
    int fd = connect_tcp("127.0.0.1", node->port());
    ASSERT_GE(fd, 0);
    peers.fds.push_back(fd);
    ASSERT_TRUE(send_all(fd, request.substr(0, cut)));
    ::shutdown(fd, SHUT_WR);
  }
  for (int fd : peers.fds) {
    auto type = next_pdu_type(fd, 10s);
    ASSERT_TRUE(type) << "a peer that stopped was not dropped before its ACSE timeout";
    EXPECT_EQ(*type, 0) << "PDU " << int(*type) << " instead of a closed socket";
  }
  auto log = node->log();
  EXPECT_TRUE(contains(log, "it closed after 40 of the")) << log;
  EXPECT_EQ(echo_within_2s(*node), 0);
}
