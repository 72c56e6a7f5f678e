// Cancel and re-run through the job manager, with the real actors on a real
// scheduler (the HTTP routes come with the web interface).

#include "actors/job_manager.hpp"
#include "actors/job_store.hpp"
#include "pipeline/jobs/database.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct job_actors : ::testing::Test {
  void SetUp() override {
    fs::create_directories(layout.jobs_dir());
    auto opened = database::open(layout.database_file());
    ASSERT_TRUE(opened);
    db = std::move(*opened);
    write_file(streams / "slow" / "work.sh",
               "#!/bin/sh\nif [ -f " + (dir / "fast").string() + " ]; then exit 0; fi\nsleep 60\n");
    fs::permissions(streams / "slow" / "work.sh", fs::perms::owner_all);
    write_stream(streams, "slow", "SLOW", "\"command\": [\"./work.sh\"]");
    registry->set(std::make_shared<streams::registry_snapshot>(streams::load_registry(streams)));
    journal_settings journal_config;
    journal_config.dir = layout.journal_dir();
    journal_config.segment_bytes = 1 << 20;
    auto journal_opened = journal::open(journal_config);
    ASSERT_TRUE(journal_opened) << journal_opened.error().message;
    store = system.spawn<caf::detached>(
        job_store,
        job_store_settings{db, layout.data_dir(),
                           std::shared_ptr<journal>{std::move(*journal_opened)}, false, nullptr});
    job_manager_settings settings;
    settings.job_store = store;
    settings.registry = registry;
    settings.data_dir = dir.path();
    manager = system.spawn(job_manager, settings);
  }

  void TearDown() override {
    self->send_exit(manager, caf::exit_reason::user_shutdown);
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }

  job_record queued_job() {
    job_record job;
    job.stream = "slow";
    job.state = job_state::queued;
    job.called_ae = "SLOW";
    job.study_uid = "1.2.3";
    auto id = db->insert_job(job);
    EXPECT_TRUE(id);
    job.id = *id;
    fs::create_directories(layout.job_dir(job.id) / "INPUT");
    fs::create_directories(layout.job_dir(job.id) / "OUTPUT");
    return job;
  }

  std::string state_of(std::int64_t id) {
    std::string state;
    self->request(store, caf::infinite, get_atom::value, job_atom::value, id)
        .receive([&](job_record& job) { state = to_string(job.state); },
                 [&](caf::error& e) { state = describe(e); });
    return state;
  }

  bool wait_for(std::int64_t id, const std::string& state) {
    return eventually([&] { return state_of(id) == state; }, 20s);
  }

  temp_dir dir;
  fs::path streams = dir / "streams";
  store_layout layout{dir.path()};
  std::shared_ptr<database> db;
  std::shared_ptr<streams::shared_registry> registry = std::make_shared<streams::shared_registry>();
  caf::actor_system_config config;
  caf::actor_system system{config};
  caf::scoped_actor self{system};
  job_store_actor store;
  job_manager_actor manager;
};

} // namespace

TEST_F(job_actors, a_running_job_is_cancelled_and_a_queued_one_never_runs) {
  auto first = queued_job();
  auto second = queued_job();
  self->send(manager, job_atom::value, std::vector<job_record>{first, second});
  ASSERT_TRUE(wait_for(first.id, "running"));
  EXPECT_EQ(state_of(second.id), "queued") << "one job at a time";

  bool found = false;
  self->request(manager, caf::infinite, cancel_atom::value, second.id)
      .receive([&](bool f) { found = f; }, [](caf::error&) {});
  EXPECT_TRUE(found);
  ASSERT_TRUE(wait_for(second.id, "cancelled"));
  self->request(manager, caf::infinite, cancel_atom::value, first.id)
      .receive([&](bool f) { found = f; }, [](caf::error&) {});
  EXPECT_TRUE(found);
  ASSERT_TRUE(wait_for(first.id, "cancelled"));
  EXPECT_NE(read_file(layout.job_dir(first.id) / "proc.json").find("cancelled"), std::string::npos);
  EXPECT_FALSE(fs::exists(layout.job_dir(second.id) / "processing.log")) << "it never ran";
  // Cancelling a finished job finds nothing to cancel.
  self->request(manager, caf::infinite, cancel_atom::value, first.id)
      .receive([&](bool f) { found = f; }, [](caf::error&) {});
  EXPECT_FALSE(found);
}

TEST_F(job_actors, a_finished_job_runs_again_on_request) {
  auto job = queued_job();
  write_file(dir / "fast", "");
  self->send(manager, job_atom::value, std::vector<job_record>{job});
  ASSERT_TRUE(wait_for(job.id, "success"));
  write_file(layout.job_dir(job.id) / "OUTPUT" / "old-result", "x");
  job_record again;
  self->request(manager, caf::infinite, retry_atom::value, job.id)
      .receive([&](job_record& j) { again = j; }, [](caf::error&) {});
  EXPECT_EQ(again.state, job_state::queued);
  ASSERT_TRUE(eventually(
      [&] {
        auto log = read_file(layout.job_dir(job.id) / "processing.log");
        auto first = log.find("starts");
        return first != std::string::npos && log.find("starts", first + 1) != std::string::npos &&
               state_of(job.id) == "success";
      },
      20s));
  EXPECT_FALSE(fs::exists(layout.job_dir(job.id) / "OUTPUT" / "old-result"));
  // A job that is still queued or running cannot be re-run.
  std::string why;
  auto busy = queued_job();
  fs::remove(dir / "fast");
  self->send(manager, job_atom::value, std::vector<job_record>{busy});
  ASSERT_TRUE(wait_for(busy.id, "running"));
  self->request(manager, caf::infinite, retry_atom::value, busy.id)
      .receive([](job_record&) {}, [&](caf::error& e) { why = describe(e); });
  EXPECT_NE(why.find("is running; only a finished job can run again"), std::string::npos) << why;
  self->request(manager, caf::infinite, cancel_atom::value, busy.id)
      .receive([](bool) {}, [](caf::error&) {});
  ASSERT_TRUE(wait_for(busy.id, "cancelled"));
}

TEST_F(job_actors, stream_statistics_count_queue_and_run_times) {
  write_file(dir / "fast", "");
  auto job = queued_job();
  self->send(manager, job_atom::value, std::vector<job_record>{job});
  ASSERT_TRUE(wait_for(job.id, "success"));
  std::vector<stream_stats> stats;
  ASSERT_TRUE(eventually(
      [&] {
        self->request(manager, caf::infinite, get_atom::value, stats_atom::value)
            .receive([&](std::vector<stream_stats>& s) { stats = s; }, [](caf::error&) {});
        return stats.size() == 1 && stats[0].runs == 1;
      },
      10s));
  EXPECT_EQ(stats[0].stream, "slow");
  EXPECT_EQ(stats[0].queued, 0u);
  EXPECT_GT(stats[0].mean_s, 0);
}
