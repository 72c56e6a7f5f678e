// The send policy on its own: what a file's outcome makes of it, how long a
// send waits before its next attempt, and where it stands after an attempt.

#include "pipeline/routing/send_policy.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(send_policy, a_file_state_follows_the_dimse_status_class) {
  auto outcome = [](bool sent, std::uint16_t status) {
    return file_state_of(file_outcome{"f.dcm", status, sent, ""});
  };
  EXPECT_EQ(outcome(true, 0x0000), file_send_state::sent);
  EXPECT_EQ(outcome(true, 0x0001), file_send_state::warning);
  EXPECT_EQ(outcome(true, 0xB000), file_send_state::warning); // coercion of data elements
  EXPECT_EQ(outcome(true, 0xB007), file_send_state::warning); // data set does not match SOP class
  EXPECT_EQ(outcome(true, 0xA700), file_send_state::refused); // out of resources
  EXPECT_EQ(outcome(true, 0xC000), file_send_state::refused); // cannot understand
  EXPECT_EQ(outcome(false, 0), file_send_state::pending);     // no association: not attempted
}

TEST(send_policy, retry_delays_grow_to_their_cap_with_jitter) {
  sending_config sending;
  sending.retry_initial_s = 2;
  sending.retry_factor = 3;
  sending.retry_max_s = 60;
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 1, 1.0), 2);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 2, 1.0), 6);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 3, 1.0), 18);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 4, 1.0), 54);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 5, 1.0), 60);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 50, 1.2), 72);
  EXPECT_DOUBLE_EQ(retry_delay_s(sending, 1, 0.8), 1.6);
}

TEST(send_policy, states_read_back_as_written) {
  for (auto state : {send_state::queued, send_state::sending, send_state::retrying,
                     send_state::done, send_state::failed})
    EXPECT_EQ(parse_send_state(to_string(state)), state);
  for (auto state : {file_send_state::pending, file_send_state::sent, file_send_state::warning,
                     file_send_state::refused, file_send_state::missing})
    EXPECT_EQ(parse_file_send_state(to_string(state)), state);
  EXPECT_FALSE(parse_send_state("delivered"));
  EXPECT_TRUE(is_finished(send_state::done));
  EXPECT_TRUE(is_finished(send_state::failed));
  EXPECT_FALSE(is_finished(send_state::retrying));
}

TEST(send_policy, an_attempt_ends_done_failed_or_retrying) {
  sending_config sending;
  sending.max_attempts = 3;
  send_task task;
  task.files_total = 10;
  task.attempts = 1;
  std::vector<send_file> files(10);
  for (auto& f : files)
    f.state = file_send_state::sent;
  files[9].state = file_send_state::warning;
  auto counts = tally(files);
  EXPECT_EQ(counts.stored, 10);
  auto done = conclude_attempt(task, counts, sending, "", 1.0);
  EXPECT_EQ(done.state, send_state::done);
  EXPECT_EQ(done.message, "10 files stored");

  files[0].state = file_send_state::refused;
  files[1].state = file_send_state::pending;
  auto retry = conclude_attempt(task, tally(files), sending, "0xA700 out of resources", 1.0);
  EXPECT_EQ(retry.state, send_state::retrying);
  EXPECT_EQ(retry.message, "2 files not stored yet: 0xA700 out of resources");
  EXPECT_DOUBLE_EQ(retry.retry_in_s, retry_delay_s(sending, 1, 1.0));

  task.attempts = 3;
  auto failed = conclude_attempt(task, tally(files), sending, "0xA700 out of resources", 1.0);
  EXPECT_EQ(failed.state, send_state::failed);
  EXPECT_NE(failed.message.find("2 of 10 files not stored after 3 attempts"), std::string::npos)
      << failed.message;

  // Files that are gone (their job deleted) fail the send once nothing else is left.
  files[0].state = file_send_state::missing;
  files[1].state = file_send_state::sent;
  task.attempts = 1;
  auto gone = conclude_attempt(task, tally(files), sending, "", 1.0);
  EXPECT_EQ(gone.state, send_state::failed);
  EXPECT_EQ(gone.message, "1 files no longer exist");
}
