// The supervisor in front of an actor: requests reach the actor and its
// answer reaches the requester; a dead actor is started again after the
// back-off while requests wait for it. Giving up on a crash loop takes 15 s
// of back-off: the supervision integration test covers it.

#include "actors/supervisor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using namespace dcmstreams;

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;

/// Adds to what it is sent; `generation` tells which start of it answered.
caf::behavior adder(caf::event_based_actor*, int generation) {
  return {[generation](add_atom, int x) { return x + 1000 * generation; }};
}

struct supervised_adder : ::testing::Test {
  supervised_adder() {
    config.set("logger.verbosity", caf::atom("quiet"));
    system = std::make_unique<caf::actor_system>(config);
    metrics = std::make_unique<node_metrics>(registry);
    handle = spawn_supervised<caf::actor>(
        *system, "adder",
        [this](caf::actor_system& sys, bool restarted, const caf::actor&) {
          ++starts;
          EXPECT_EQ(restarted, starts > 1);
          return sys.spawn(adder, starts.load());
        },
        metrics.get());
  }
  ~supervised_adder() override {
    caf::scoped_actor self{*system};
    self->send_exit(handle, caf::exit_reason::user_shutdown);
  }

  int ask(int x) {
    int answer = -1;
    caf::scoped_actor self{*system};
    self->request(handle, std::chrono::seconds(10), add_atom::value, x)
        .receive([&](int y) { answer = y; }, [&](caf::error&) { answer = -2; });
    return answer;
  }

  bool crash() {
    bool crashed = false;
    caf::scoped_actor self{*system};
    self->request(handle, std::chrono::seconds(10), crash_atom::value)
        .receive([&](bool b) { crashed = b; }, [](caf::error&) {});
    return crashed;
  }

  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  metrics::registry registry;
  std::unique_ptr<node_metrics> metrics;
  std::atomic<int> starts{0};
  caf::actor handle;
};

} // namespace

TEST(restart_backoff, doubles_from_half_a_second_and_gives_up_after_five_in_ten_minutes) {
  restart_backoff backoff;
  epoch_ms t = 1'000'000;
  for (double expected : {0.5, 1.0, 2.0, 4.0, 8.0}) {
    auto delay = backoff.record_death(t += 1000);
    ASSERT_TRUE(delay);
    EXPECT_DOUBLE_EQ(*delay, expected);
  }
  EXPECT_EQ(backoff.describe(8.0), "in 8.0 s (restart 5 in ten minutes)");
  EXPECT_FALSE(backoff.record_death(t += 1000));
}

TEST(restart_backoff, deaths_older_than_ten_minutes_are_forgotten) {
  restart_backoff backoff;
  epoch_ms t = 1'000'000;
  for (int i = 0; i < 5; ++i)
    backoff.record_death(t += 1000);
  auto delay = backoff.record_death(t + restart_backoff::window_ms + 10'000);
  ASSERT_TRUE(delay);
  EXPECT_DOUBLE_EQ(*delay, 0.5);
  EXPECT_EQ(backoff.recent(), 1u);
}

TEST_F(supervised_adder, passes_requests_on_and_restarts_a_dead_actor_while_requests_wait) {
  EXPECT_EQ(ask(1), 1001);
  ASSERT_TRUE(crash());
  // The restart is counted when the death is noticed; a request from then
  // on (in the 0.5 s back-off) waits in the supervisor for the second start.
  auto counted = [this] {
    return registry.expose().find("dcmstreams_actor_restarts_total{actor=\"adder\"} 1") !=
           std::string::npos;
  };
  for (int i = 0; i < 500 && !counted(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE(counted()) << registry.expose();
  EXPECT_EQ(ask(2), 2002);
  EXPECT_EQ(starts, 2);
}
