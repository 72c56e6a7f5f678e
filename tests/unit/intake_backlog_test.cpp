#include "pipeline/jobs/intake_backlog.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace dcmstreams;
using namespace std::chrono_literals;

TEST(intake_backlog, within_its_limit_nothing_waits) {
  intake_backlog backlog{100, 2000ms};
  backlog.add(100);
  auto outcome = backlog.wait_for_room();
  EXPECT_EQ(outcome.waited.count(), 0);
  EXPECT_FALSE(outcome.began_waiting);
  EXPECT_FALSE(outcome.caught_up);
}

TEST(intake_backlog, without_a_limit_nothing_ever_waits) {
  intake_backlog backlog{0, 2000ms};
  backlog.add(1000000);
  EXPECT_EQ(backlog.wait_for_room().waited.count(), 0);
}

TEST(intake_backlog, an_answer_waits_until_job_creation_catches_up) {
  intake_backlog backlog{100, 10000ms};
  backlog.add(150);
  std::thread creation([&] {
    std::this_thread::sleep_for(300ms);
    backlog.remove(100);
  });
  auto outcome = backlog.wait_for_room();
  creation.join();
  EXPECT_GE(outcome.waited, 250ms);
  EXPECT_LT(outcome.waited, 9000ms) << "woken when room came, not at the end of its time";
  EXPECT_TRUE(outcome.began_waiting);
  EXPECT_EQ(outcome.backlog, 150u);
  EXPECT_EQ(backlog.size(), 50u);
  // The next answer finds room, and says the stretch of waiting is over (once).
  auto next = backlog.wait_for_room();
  EXPECT_TRUE(next.caught_up);
  EXPECT_EQ(next.backlog, 50u);
  EXPECT_FALSE(backlog.wait_for_room().caught_up);
}

TEST(intake_backlog, an_answer_waits_at_most_its_time_and_a_stretch_is_told_once) {
  intake_backlog backlog{10, 200ms};
  backlog.add(20);
  auto first = backlog.wait_for_room();
  EXPECT_GE(first.waited, 190ms);
  EXPECT_TRUE(first.began_waiting);
  auto second = backlog.wait_for_room();
  EXPECT_GE(second.waited, 190ms);
  EXPECT_FALSE(second.began_waiting);
  backlog.remove(1000); // more than it holds: empty, never below
  EXPECT_EQ(backlog.size(), 0u);
  EXPECT_TRUE(backlog.wait_for_room().caught_up);
}
