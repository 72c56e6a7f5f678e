// The assembler's timing, with CAF's deterministic test coordinator: time
// moves only when the test says so.
#define CAF_SUITE assembler

#include "actors/assembler.hpp"
#include "actors/job_store.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/store.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

#include <cstdlib>
#include <fstream>

using namespace dcmstreams;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct fixture : test_coordinator_fixture<> {
  fixture() {
    char pattern[] = "/tmp/dcmstreams-assembler-XXXXXX";
    root = ::mkdtemp(pattern);
    layout = std::make_unique<store_layout>(root);
    auto opened = database::open(layout->database_file());
    CAF_REQUIRE(static_cast<bool>(opened));
    db = std::move(*opened);
    registry = std::make_shared<streams::shared_registry>();
    // The real job store, spawned on the test scheduler instead of detached.
    journal_settings journal_config;
    journal_config.dir = layout->journal_dir();
    journal_config.segment_bytes = 1 << 20;
    auto journal_opened = journal::open(journal_config);
    CAF_REQUIRE(static_cast<bool>(journal_opened));
    store =
        sys.spawn(job_store,
                  job_store_settings{db, root, std::shared_ptr<journal>{std::move(*journal_opened)},
                                     false, nullptr});
    completion_config completion;
    completion.quiet_period_s = 15;
    completion.max_wait_s = 60;
    assembler_handle =
        sys.spawn(assembler, assembler_settings{store, job_manager_actor{}, completion, registry});
    sched.run();
  }

  ~fixture() {
    self->send_exit(assembler_handle, caf::exit_reason::user_shutdown);
    self->send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }

  // Writes an instance file into incoming/ as the listener would and tells the assembler.
  void arrive(const study_key& key, const std::string& sop) {
    auto path =
        layout->incoming_instance(key.called_ae, key.calling_ae, key.peer, key.study_uid, sop);
    fs::create_directories(path.parent_path());
    std::ofstream{path} << "instance " << sop;
    self->send(assembler_handle, arrived_atom::value, key,
               arrived_instance{sop, path.string(), 10, 0, {}, {}, {}, {}});
    sched.run();
  }

  // The same, from the association on `peer_port` (as the listener bridge sends it).
  void arrive_via(const study_key& key, const std::string& sop, std::uint16_t peer_port) {
    auto path =
        layout->incoming_instance(key.called_ae, key.calling_ae, key.peer, key.study_uid, sop);
    fs::create_directories(path.parent_path());
    std::ofstream{path} << "instance " << sop;
    self->send(assembler_handle, arrived_atom::value, key,
               arrived_instance{sop, path.string(), 10, 0, {}, {}, {}, {}}, peer_port);
    sched.run();
  }

  // An instance of a series with this modality and description.
  void arrive_in_series(const study_key& key, const std::string& sop, const std::string& series,
                        const std::string& modality, const std::string& description = "") {
    auto path =
        layout->incoming_instance(key.called_ae, key.calling_ae, key.peer, key.study_uid, sop);
    fs::create_directories(path.parent_path());
    std::ofstream{path} << "instance " << sop;
    arrived_instance instance{sop, path.string(), 10, 0, {}, series, modality, description};
    self->send(assembler_handle, arrived_atom::value, key, instance);
    sched.run();
  }

  // A stream "late" (AE title LATE) with this late policy.
  void use_late_stream(const std::string& policy) {
    auto streams_dir = root / "streams";
    fs::create_directories(streams_dir / "late");
    std::ofstream{streams_dir / "late" / "info.json"}
        << R"({"AETitle": "LATE", "command": ["true"], "late": ")" << policy << "\"}";
    registry->set(
        std::make_shared<streams::registry_snapshot>(streams::load_registry(streams_dir)));
  }

  std::vector<job_record> jobs_in(job_state state) {
    auto jobs = db->jobs_in_state(state);
    CAF_REQUIRE(static_cast<bool>(jobs));
    return *jobs;
  }

  // A stream "req" (AE title REQ) with this complete_when.
  void use_required_stream(const std::string& complete_when) {
    auto streams_dir = root / "streams";
    fs::create_directories(streams_dir / "req");
    std::ofstream{streams_dir / "req" / "info.json"}
        << R"({"AETitle": "REQ", "command": ["true"], "complete_when": )" << complete_when << "}";
    registry->set(
        std::make_shared<streams::registry_snapshot>(streams::load_registry(streams_dir)));
  }

  void released(const study_key& key, std::uint16_t peer_port) {
    self->send(assembler_handle, released_atom::value, key.called_ae, key.calling_ae, key.peer,
               peer_port);
    sched.run();
  }

  // A stream "rel" (AE title REL) that completes on release.
  void use_release_stream() {
    auto streams_dir = root / "streams";
    fs::create_directories(streams_dir / "rel");
    std::ofstream{streams_dir / "rel" / "info.json"}
        << R"({"AETitle": "REL", "command": ["true"], "complete_on": "release"})";
    registry->set(
        std::make_shared<streams::registry_snapshot>(streams::load_registry(streams_dir)));
  }

  std::vector<job_record> queued_jobs() {
    auto jobs = db->jobs_in_state(job_state::queued);
    CAF_REQUIRE(static_cast<bool>(jobs));
    return *jobs;
  }

  // Lets the clock run on and every message triggered by it be handled.
  void wait(caf::timespan span) {
    advance_time(span);
    sched.run();
  }

  fs::path root;
  std::unique_ptr<store_layout> layout;
  std::shared_ptr<database> db;
  std::shared_ptr<streams::shared_registry> registry;
  job_store_actor store;
  assembler_actor assembler_handle;
  study_key ct{"SMOOTH", "MODALITY", "10.0.0.5", "1.2.3"};
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(assembler_tests, fixture)

CAF_TEST(a study completes when its quiet period has passed and not before) {
  arrive(ct, "1.2.3.1");
  arrive(ct, "1.2.3.2");
  wait(14s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  advance_time(1s);
  // The timer fires, the assembler asks the job store for the job.
  expect((tick_atom, study_key), from(assembler_handle).to(assembler_handle).with(_, ct));
  expect((create_atom, completed_study), from(assembler_handle).to(store).with(_, _));
  sched.run();
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 2);
  CAF_CHECK_EQUAL(jobs[0].calling_ae, "MODALITY");
  CAF_CHECK_EQUAL(jobs[0].peer, "10.0.0.5");
}

CAF_TEST(every instance restarts the quiet period) {
  arrive(ct, "1.2.3.1");
  for (int i = 2; i <= 5; ++i) {
    wait(10s);
    arrive(ct, "1.2.3." + std::to_string(i));
  }
  wait(14s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  wait(1s);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 5);
}

CAF_TEST(the maximum wait completes a study that never goes quiet) {
  for (int i = 0; i < 6; ++i) {
    arrive(ct, "1.2.3." + std::to_string(i + 1));
    CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
    wait(10s);
  }
  // 60 s after the first instance the study completes although instances
  // kept coming every 10 s (max_wait_s is 60 here).
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 6);
}

CAF_TEST(callers peers and called titles make separate studies) {
  study_key other_caller = ct;
  other_caller.calling_ae = "WORKSTATION";
  study_key other_peer = ct;
  other_peer.peer = "10.0.0.6";
  arrive(ct, "1.2.3.1");
  arrive(other_caller, "1.2.3.2");
  arrive(other_peer, "1.2.3.3");
  arrive(ct, "1.2.3.1"); // the same instance again: still one
  wait(15s);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 3u);
  for (auto& job : jobs)
    CAF_CHECK_EQUAL(job.instances, 1);
}

CAF_TEST(completion can be forced and later instances start a new study) {
  arrive(ct, "1.2.3.1");
  std::uint64_t completed = 0;
  self->send(assembler_handle, complete_atom::value, ct.study_uid);
  sched.run();
  self->receive([&](std::uint64_t n) { completed = n; }, caf::after(0s) >> [] {});
  CAF_CHECK_EQUAL(completed, 1u);
  CAF_CHECK_EQUAL(queued_jobs().size(), 1u);
  arrive(ct, "1.2.3.2");
  wait(15s);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 2u);
  CAF_CHECK_EQUAL(jobs[1].instances, 1);
}

CAF_TEST(a stream can shorten its quiet period) {
  auto streams_dir = root / "streams";
  fs::create_directories(streams_dir / "fast");
  std::ofstream{streams_dir / "fast" / "info.json"}
      << R"({"AETitle": "FAST", "command": ["true"], "quiet_period_s": 0.5})";
  registry->set(std::make_shared<streams::registry_snapshot>(streams::load_registry(streams_dir)));
  study_key fast{"FAST", "MODALITY", "10.0.0.5", "1.2.4"};
  arrive(fast, "1.2.4.1");
  wait(400ms);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  wait(100ms);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].stream, "fast");
}

CAF_TEST(complete on release : a study completes when its associations are released) {
  use_release_stream();
  study_key rel{"REL", "MODALITY", "10.0.0.5", "1.2.5"};
  // Two parallel associations of one sender: the study waits for both.
  arrive_via(rel, "1.2.5.1", 40001);
  arrive_via(rel, "1.2.5.2", 40002);
  released(rel, 40001);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  released(rel, 40002);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 2);
  CAF_CHECK_EQUAL(jobs[0].stream, "rel");
}

CAF_TEST(complete on release : other senders and ports do not count and the quiet period does) {
  use_release_stream();
  study_key rel{"REL", "MODALITY", "10.0.0.5", "1.2.6"};
  arrive_via(rel, "1.2.6.1", 40001);
  released({"REL", "OTHER", "10.0.0.5", "1.2.6"}, 40001);
  released(rel, 40009);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  // An aborted association sends no release: the quiet period completes the study.
  wait(15s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 1u);
}

CAF_TEST(without complete on release a release changes nothing) {
  arrive_via(ct, "1.2.3.1", 40001);
  released(ct, 40001);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  wait(15s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 1u);
}

CAF_TEST(pending studies are listed) {
  arrive(ct, "1.2.3.1");
  arrive(ct, "1.2.3.2");
  std::vector<pending_study> pending;
  self->send(assembler_handle, get_atom::value, pending_atom::value);
  sched.run();
  self->receive([&](std::vector<pending_study>& list) { pending = std::move(list); },
                caf::after(0s) >> [] {});
  CAF_REQUIRE_EQUAL(pending.size(), 1u);
  CAF_CHECK_EQUAL(pending[0].instances, 2u);
  CAF_CHECK_EQUAL(pending[0].bytes, 20u);
}

CAF_TEST(a study completes as soon as its required set arrived counting matching series only) {
  use_required_stream(R"({"series": 2, "modality": "CT", "series_description": "^ax",
                          "min_instances": 3})");
  study_key key{"REQ", "MODALITY", "10.0.0.5", "7.7.7"};
  arrive_in_series(key, "7.7.7.1", "7.7.7.100", "CT", "AX 1mm");
  arrive_in_series(key, "7.7.7.2", "7.7.7.100", "CT", "AX 1mm");
  arrive_in_series(key, "7.7.7.3", "7.7.7.200", "MR", "AX T1");   // another modality
  arrive_in_series(key, "7.7.7.4", "7.7.7.300", "CT", "COR 3mm"); // another description
  arrive_in_series(key, "7.7.7.2", "7.7.7.100", "CT", "AX 1mm");  // sent again: counts once
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  arrive_in_series(key, "7.7.7.5", "7.7.7.400", "CT", "ax soft");
  // No time passed: the second matching series with the third instance did it.
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 5);
  // A late instance starts a study of its own, which waits for its quiet period.
  arrive_in_series(key, "7.7.7.6", "7.7.7.500", "CT", "AX 1mm");
  wait(10s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 1u);
  wait(6s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 2u);
}

CAF_TEST(a required set that never arrives leaves the quiet period to complete the study) {
  use_required_stream(R"({"series": 2})");
  study_key key{"REQ", "MODALITY", "10.0.0.5", "8.8.8"};
  arrive_in_series(key, "8.8.8.1", "8.8.8.100", "CT");
  arrive_in_series(key, "8.8.8.2", "8.8.8.100", "CT");
  wait(14s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 0u);
  wait(2s);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 1u);
  CAF_CHECK_EQUAL(jobs[0].instances, 2);
}

CAF_TEST(late instances run again with the earlier ones under append_and_rerun) {
  use_late_stream("append_and_rerun");
  study_key key{"LATE", "MODALITY", "10.0.0.5", "9.9.9"};
  arrive(key, "9.9.9.1");
  arrive(key, "9.9.9.2");
  wait(16s);
  CAF_REQUIRE_EQUAL(queued_jobs().size(), 1u);
  auto first = queued_jobs()[0].id;
  arrive(key, "9.9.9.3");
  arrive(key, "9.9.9.2"); // a late copy of an instance the first job has
  wait(16s);
  auto jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 2u);
  auto& again = jobs[1];
  CAF_CHECK_EQUAL(again.instances, 3);
  CAF_CHECK(again.message.find("job " + std::to_string(first) +
                               " again: its 1 instances with 2 "
                               "that arrived after it was made") != std::string::npos);
  auto input = layout->job_dir(again.id) / "INPUT";
  CAF_CHECK(fs::exists(input / "9.9.9.1.dcm"));
  CAF_CHECK(fs::exists(input / "9.9.9.3.dcm"));
  std::ifstream late_copy{input / "9.9.9.2.dcm"};
  std::string text((std::istreambuf_iterator<char>(late_copy)), std::istreambuf_iterator<char>());
  CAF_CHECK_EQUAL(text, "instance 9.9.9.2");
  // Later still: the rerun is what the next late instance extends.
  arrive(key, "9.9.9.4");
  wait(16s);
  jobs = queued_jobs();
  CAF_REQUIRE_EQUAL(jobs.size(), 3u);
  CAF_CHECK_EQUAL(jobs[2].instances, 4);
}

CAF_TEST(late instances are kept and run by no job under ignore) {
  use_late_stream("ignore");
  study_key key{"LATE", "MODALITY", "10.0.0.5", "6.6.6"};
  arrive(key, "6.6.6.1");
  wait(16s);
  CAF_REQUIRE_EQUAL(queued_jobs().size(), 1u);
  arrive(key, "6.6.6.2");
  wait(16s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 1u);
  auto skipped = jobs_in(job_state::skipped);
  CAF_REQUIRE_EQUAL(skipped.size(), 1u);
  CAF_CHECK(skipped[0].message.find("ignored (late: \"ignore\")") != std::string::npos);
  // Another sender's copy of the study is not late: a job of its own.
  arrive(study_key{"LATE", "OTHER", "10.0.0.6", "6.6.6"}, "6.6.6.1");
  wait(16s);
  CAF_CHECK_EQUAL(queued_jobs().size(), 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()
