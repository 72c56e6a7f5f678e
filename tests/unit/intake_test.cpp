#include "pipeline/dicom/file_meta.hpp"
#include "pipeline/dicom/synth.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/intake.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <map>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

ino_t inode(const fs::path& p) {
  struct stat s {};
  ::stat(p.c_str(), &s);
  return s.st_ino;
}

// A pending study in incoming/, written the way the listener writes it.
struct incoming_study {
  study_key key;
  std::vector<arrived_instance> instances;
};

// A synthetic study of `count` instances, each as the file the listener
// keeps: a meta header naming the association, then the data set.
struct received_files {
  std::string study_uid;
  std::vector<std::pair<std::string, std::string>> instances; // SOP Instance UID, file bytes
};

received_files synthesize_received(const fs::path& scratch, int count) {
  synth_options options;
  options.out = scratch;
  options.series = 1;
  options.instances = count;
  options.rows = options.cols = 16;
  auto written = synthesize(options);
  EXPECT_TRUE(written);
  received_files received;
  received.study_uid = written->study_uids.front();
  for (auto& file : written->files) {
    auto sop = fixtures::sop_instance_uid(file);
    received.instances.emplace_back(
        sop, encode_file_meta({"1.2.840.10008.5.1.4.1.1.2", sop, "1.2.840.10008.1.2.1", "STORESCU",
                               "SMOOTH", "dicom://127.0.0.1:5000"}) +
                 fixtures::dataset_bytes(file));
  }
  return received;
}

incoming_study receive(const store_layout& layout, const fs::path& scratch, int count) {
  auto received = synthesize_received(scratch, count);
  incoming_study study;
  study.key = {"SMOOTH", "STORESCU", "127.0.0.1", received.study_uid};
  for (auto& [sop, content] : received.instances) {
    auto path = layout.incoming_instance(study.key.called_ae, study.key.calling_ae, study.key.peer,
                                         study.key.study_uid, sop);
    fixtures::write_file(path, content);
    study.instances.push_back({sop, path.string(), content.size(), inode(path), {}});
  }
  return study;
}

// A pending study in the journal, appended the way the listener appends it;
// `files` maps each SOP Instance UID to the bytes the job must get.
struct journaled_study {
  study_key key;
  std::vector<arrived_instance> instances;
  std::map<std::string, std::string> files;
};

journaled_study receive_into(journal& j, const fs::path& scratch, int count) {
  auto received = synthesize_received(scratch, count);
  journaled_study study;
  study.key = {"SMOOTH", "STORESCU", "127.0.0.1", received.study_uid};
  for (auto& [sop, content] : received.instances) {
    auto ticket = j.append_instance(
        {study.key.called_ae, study.key.calling_ae, study.key.peer, study.key.study_uid, sop},
        content);
    EXPECT_TRUE(ticket);
    EXPECT_FALSE(j.wait_durable(*ticket));
    arrived_instance instance;
    instance.sop_uid = sop;
    instance.bytes = content.size();
    instance.record = ticket->ref;
    study.instances.push_back(instance);
    study.files[sop] = content;
  }
  return study;
}

} // namespace

class intake_fixture : public ::testing::Test {
protected:
  void SetUp() override {
    auto opened = database::open(layout.data_dir() / "dcmstreams.db");
    ASSERT_TRUE(opened) << opened.error().message;
    db = std::move(*opened);
    fs::create_directories(layout.receive_dir());
  }
  /// The node's ingest journal in the data folder, opened on first use;
  /// reopen_journal() stands for a restart.
  journal& ingest_journal() {
    if (!journal_)
      reopen_journal();
    return *journal_;
  }
  void reopen_journal() {
    journal_.reset();
    journal_settings settings;
    settings.dir = layout.journal_dir();
    settings.segment_bytes = 1 << 20;
    auto opened = journal::open(settings);
    ASSERT_TRUE(opened) << opened.error().message;
    journal_ = std::move(*opened);
  }
  /// A job row in `creating`, as step 1 leaves it for `key`; its id.
  std::int64_t creating_job(const study_key& key) {
    job_record half;
    half.stream = "smooth";
    half.called_ae = key.called_ae;
    half.calling_ae = key.calling_ae;
    half.peer = key.peer;
    half.study_uid = key.study_uid;
    auto id = db->insert_job(half);
    EXPECT_TRUE(id);
    return id ? *id : 0;
  }
  fixtures::temp_dir dir;
  fixtures::temp_dir scratch;
  store_layout layout{dir.path()};
  std::unique_ptr<database> db;
  std::unique_ptr<journal> journal_;
};

TEST_F(intake_fixture, a_completed_study_becomes_a_queued_job_with_linked_input) {
  auto study = receive(layout, scratch.path(), 5);
  intake jobs{layout, *db, ingest_journal(), true};
  auto created = jobs.create_jobs({study.key, "smooth", study.instances, 1234, {}, false});
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_EQ(created->size(), 1u);
  auto job = &created->front();
  EXPECT_EQ(job->state, job_state::queued);
  EXPECT_EQ(job->instances, 5);
  auto input = layout.job_dir(job->id) / "INPUT";
  ASSERT_EQ(fixtures::files_under(input).size(), 5u);
  EXPECT_TRUE(fs::is_directory(layout.job_dir(job->id) / "OUTPUT"));
  for (auto& instance : study.instances) {
    auto linked = input / (instance.sop_uid + ".dcm");
    auto stored = layout.stored_instance(study.key.study_uid, instance.sop_uid);
    EXPECT_EQ(inode(linked), inode(stored)) << "INPUT is a hard link into the store";
    EXPECT_FALSE(fs::exists(instance.path)) << "incoming/ is emptied";
  }
  EXPECT_FALSE(fs::exists(
      layout.incoming_study_dir("SMOOTH", "STORESCU", "127.0.0.1", study.key.study_uid)));
  auto info = fixtures::read_file(layout.job_dir(job->id) / "info.json");
  for (auto key : {"\"CallerIP\": \"127.0.0.1\"", "\"AETitleCalled\": \"SMOOTH\"",
                   "\"AETitleCaller\": \"STORESCU\"", "\"received\": \"1970-01-01T00:00:01.234Z\"",
                   "\"stream\": \"smooth\"", "\"instances\": 5"})
    EXPECT_NE(info.find(key), std::string::npos) << key << "\n" << info;
  auto recorded = db->find_job(job->id);
  ASSERT_TRUE(recorded && *recorded);
  EXPECT_EQ((*recorded)->state, job_state::queued);
  EXPECT_EQ((*recorded)->study_uid, study.key.study_uid);
}

TEST_F(intake_fixture, a_replaced_instance_stays_pending_for_the_next_job) {
  auto study = receive(layout, scratch.path(), 3);
  // The first instance is sent again before the job is made: a new inode.
  auto& first = study.instances.front();
  auto copy = fixtures::read_file(first.path);
  fs::remove(first.path);
  intake jobs{layout, *db, ingest_journal(), false};
  auto created = jobs.create_jobs({study.key, "smooth", study.instances, 0, {}, false});
  ASSERT_TRUE(created);
  EXPECT_EQ(created->front().instances, 2);
  EXPECT_NE(created->front().message.find("1 instances were replaced"), std::string::npos);
  fixtures::write_file(first.path, copy);
  first.inode = inode(first.path);
  auto again = jobs.create_jobs({study.key, "smooth", {first}, 0, {}, false});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->front().instances, 1);
}

TEST_F(intake_fixture, a_study_with_nothing_left_is_refused_and_leaves_no_job) {
  intake jobs{layout, *db, ingest_journal(), false};
  study_key key{"SMOOTH", "X", "127.0.0.1", "1.2.3"};
  auto job = jobs.create_jobs(
      {key, "smooth", {{"1.2.3.4", "/nonexistent/1.2.3.4.dcm", 10, 1, {}}}, 0, {}, false});
  ASSERT_FALSE(job);
  EXPECT_EQ(job.error().code, ec::not_found);
  auto creating = db->jobs_in_state(job_state::creating);
  ASSERT_TRUE(creating);
  EXPECT_TRUE(creating->empty());
  EXPECT_TRUE(fixtures::files_under(layout.jobs_dir()).empty());
}

TEST_F(intake_fixture, accept_filters_keep_only_matching_instances) {
  auto study = receive(layout, scratch.path(), 4); // CT
  intake jobs{layout, *db, ingest_journal(), false};
  completed_study mr_only{study.key, "mr", study.instances, 0, {{"Modality", "^MR$"}}, false};
  auto skipped = jobs.create_jobs(mr_only);
  ASSERT_TRUE(skipped) << skipped.error().message;
  ASSERT_EQ(skipped->size(), 1u);
  EXPECT_EQ(skipped->front().state, job_state::skipped);
  EXPECT_EQ(skipped->front().instances, 0);
  EXPECT_NE(skipped->front().message.find("Modality ~ ^MR$"), std::string::npos);
  auto recorded = db->find_job(skipped->front().id);
  EXPECT_EQ((*recorded)->state, job_state::skipped);
  // The instances are in the store, not pending again.
  EXPECT_TRUE(jobs.recover().pending.empty());
  for (auto& instance : study.instances)
    EXPECT_TRUE(fs::exists(layout.stored_instance(study.key.study_uid, instance.sop_uid)));
}

TEST_F(intake_fixture, group_by_series_makes_one_job_per_series) {
  synth_options options;
  options.out = scratch / "two";
  options.series = 2;
  options.instances = 3;
  options.rows = options.cols = 16;
  auto written = synthesize(options);
  ASSERT_TRUE(written);
  incoming_study study;
  study.key = {"SMOOTH", "STORESCU", "127.0.0.1", written->study_uids.front()};
  for (auto& file : written->files) {
    auto sop = fixtures::sop_instance_uid(file);
    auto path =
        layout.incoming_instance("SMOOTH", "STORESCU", "127.0.0.1", study.key.study_uid, sop);
    fs::create_directories(path.parent_path());
    fs::copy_file(file, path);
    study.instances.push_back({sop, path.string(), fs::file_size(path), inode(path), {}});
  }
  intake jobs{layout, *db, ingest_journal(), false};
  completed_study by_series{study.key, "s", study.instances, 0, {{"Modality", "CT"}}, true};
  auto created = jobs.create_jobs(by_series);
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_EQ(created->size(), 2u);
  EXPECT_NE(created->at(0).series_uid, created->at(1).series_uid);
  for (auto& job : *created) {
    EXPECT_EQ(job.instances, 3);
    EXPECT_EQ(job.state, job_state::queued);
    EXPECT_EQ(fixtures::files_under(layout.job_dir(job.id) / "INPUT").size(), 3u);
  }
}

TEST_F(intake_fixture, recovery_rebuilds_pending_studies_from_the_meta_header) {
  auto study = receive(layout, scratch.path(), 4);
  fixtures::write_file(layout.receive_dir() / "123-1.part", "half an instance");
  fixtures::write_file(layout.receive_dir() / "123-2.part", ""); // a ready, unused file
  intake jobs{layout, *db, ingest_journal(), false};
  auto report = jobs.recover();
  EXPECT_EQ(report.removed_partial_files, 1u);
  EXPECT_TRUE(fixtures::files_under(layout.receive_dir()).empty());
  ASSERT_EQ(report.pending.size(), 4u);
  for (auto& pending : report.pending)
    EXPECT_EQ(pending.key, study.key);
  EXPECT_TRUE(report.problems.empty());
}

TEST_F(intake_fixture, recovery_undoes_a_creation_cut_off_before_info_json) {
  auto study = receive(layout, scratch.path(), 2);
  job_record half;
  half.stream = "smooth";
  half.called_ae = "SMOOTH";
  half.study_uid = study.key.study_uid;
  auto id = db->insert_job(half);
  ASSERT_TRUE(id);
  fs::create_directories(layout.job_dir(*id) / "INPUT");
  intake jobs{layout, *db, ingest_journal(), false};
  auto report = jobs.recover();
  ASSERT_EQ(report.undone_jobs.size(), 1u);
  EXPECT_FALSE(fs::exists(layout.job_dir(*id)));
  EXPECT_EQ(report.pending.size(), 2u) << "its instances are pending again";
  auto found = db->find_job(*id);
  ASSERT_TRUE(found);
  EXPECT_FALSE(*found);
}

TEST_F(intake_fixture,
       recovery_finishes_a_creation_with_info_json_in_a_data_folder_from_before_the_journal) {
  auto study = receive(layout, scratch.path(), 3);
  auto id = creating_job(study.key);
  auto input = layout.job_dir(id) / "INPUT";
  fs::create_directories(input);
  for (auto& instance : study.instances)
    fs::create_hard_link(instance.path, input / (instance.sop_uid + ".dcm"));
  fixtures::write_file(layout.job_dir(id) / "info.json", "{}");
  intake jobs{layout, *db, ingest_journal(), false};
  auto report = jobs.recover();
  ASSERT_EQ(report.resumed_jobs.size(), 1u);
  EXPECT_EQ(report.resumed_jobs[0].state, job_state::queued);
  EXPECT_TRUE(report.pending.empty()) << "the instances belong to the job";
  for (auto& instance : study.instances)
    EXPECT_TRUE(fs::exists(layout.stored_instance(study.key.study_uid, instance.sop_uid)));
}

TEST_F(intake_fixture, recovery_moves_pending_files_of_the_layout_without_sender_folders) {
  auto study = receive(layout, scratch.path(), 2);
  // Where a version before per-sender folders kept them.
  auto old_dir = layout.incoming_dir() / "SMOOTH" / study.key.study_uid;
  fs::create_directories(old_dir);
  for (auto& instance : study.instances)
    fs::rename(instance.path, old_dir / (instance.sop_uid + ".dcm"));
  intake jobs{layout, *db, ingest_journal(), false};
  auto report = jobs.recover();
  EXPECT_TRUE(report.problems.empty()) << report.problems.front();
  ASSERT_EQ(report.pending.size(), 2u);
  for (auto& found : report.pending) {
    EXPECT_EQ(found.key.calling_ae, "STORESCU");
    EXPECT_EQ(found.key.peer, "127.0.0.1");
    EXPECT_EQ(found.instance.path,
              layout
                  .incoming_instance("SMOOTH", "STORESCU", "127.0.0.1", study.key.study_uid,
                                     found.instance.sop_uid)
                  .string());
    EXPECT_TRUE(fs::exists(found.instance.path));
  }
  EXPECT_TRUE(fs::is_empty(old_dir));
}

TEST_F(intake_fixture, a_creation_that_could_not_be_undone_leaves_no_ghost_beside_the_next_job) {
  auto study = receive(layout, scratch.path(), 2);
  // What a creation leaves when the disk filled up under it and even the
  // undo could not write to the database: a `creating` row, a folder, no info.json.
  job_record ghost;
  ghost.stream = "smooth";
  ghost.state = job_state::creating;
  ghost.called_ae = study.key.called_ae;
  ghost.study_uid = study.key.study_uid;
  auto ghost_id = db->insert_job(ghost);
  ASSERT_TRUE(ghost_id);
  fs::create_directories(layout.job_dir(*ghost_id) / "INPUT");

  intake jobs{layout, *db, ingest_journal(), false};
  auto created = jobs.create_jobs({study.key, "smooth", study.instances, 0, {}, false});
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_EQ(created->size(), 1u);
  auto found = db->find_job(*ghost_id);
  ASSERT_TRUE(found);
  EXPECT_FALSE(*found) << "the ghost row is still listed";
  EXPECT_FALSE(fs::exists(layout.job_dir(*ghost_id)));
  auto creating = db->jobs_in_state(job_state::creating);
  ASSERT_TRUE(creating);
  EXPECT_TRUE(creating->empty());
}

TEST_F(intake_fixture, journaled_instances_become_byte_identical_input_and_their_records_go) {
  auto study = receive_into(ingest_journal(), scratch.path(), 6);
  // The first instance was sent again: the study's copy is the second one,
  // and the discard of the first never came (the job store restarted), so
  // the job consumes it too. A third copy, which arrived after the study
  // completed, belongs to the next group and stays pending.
  auto& first = study.instances[0];
  journal_origin origin{"SMOOTH", "STORESCU", "127.0.0.1", study.key.study_uid, first.sop_uid};
  auto again = ingest_journal().append_instance(origin, study.files[first.sop_uid]);
  ASSERT_TRUE(again);
  first.record = again->ref;
  auto late = ingest_journal().append_instance(origin, "a copy after the study completed");
  ASSERT_TRUE(late);
  intake jobs{layout, *db, ingest_journal(), true};
  auto created = jobs.create_jobs({study.key, "smooth", study.instances, 1234, {}, false});
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_EQ(created->size(), 1u);
  EXPECT_EQ(created->front().instances, 6);
  auto input = layout.job_dir(created->front().id) / "INPUT";
  ASSERT_EQ(fixtures::files_under(input).size(), 6u);
  for (auto& [sop, content] : study.files) {
    EXPECT_EQ(fixtures::read_file(input / (sop + ".dcm")), content) << sop;
    EXPECT_EQ(inode(input / (sop + ".dcm")),
              inode(layout.stored_instance(study.key.study_uid, sop)));
  }
  EXPECT_FALSE(fs::exists(layout.incoming_study_dir(study.key.called_ae, study.key.calling_ae,
                                                    study.key.peer, study.key.study_uid)));
  auto usage = ingest_journal().current_usage();
  EXPECT_EQ(usage.live_records, 1u) << "records are released once the job is queued, "
                                       "all but the late copy";
  // After a restart only the late copy is pending: the replaced one does not come back.
  reopen_journal();
  intake restarted{layout, *db, ingest_journal(), true};
  auto report = restarted.recover();
  ASSERT_EQ(report.pending.size(), 1u);
  EXPECT_EQ(report.pending[0].instance.sop_uid, first.sop_uid);
  EXPECT_TRUE(report.resumed_jobs.empty());
}

TEST_F(intake_fixture, a_replaced_copy_is_discarded_at_once_and_does_not_come_back) {
  auto study = receive_into(ingest_journal(), scratch.path(), 3);
  auto& first = study.instances[0];
  auto replaced = first.record;
  auto again = ingest_journal().append_instance(
      {"SMOOTH", "STORESCU", "127.0.0.1", study.key.study_uid, first.sop_uid},
      study.files[first.sop_uid]);
  ASSERT_TRUE(again);
  EXPECT_FALSE(ingest_journal().wait_durable(*again));
  intake jobs{layout, *db, ingest_journal(), true};
  jobs.discard_replaced({replaced});
  EXPECT_EQ(ingest_journal().current_usage().live_records, 3u);
  reopen_journal();
  intake restarted{layout, *db, ingest_journal(), true};
  auto report = restarted.recover();
  EXPECT_EQ(report.pending.size(), 3u) << "the three instances, each once";
}

TEST_F(intake_fixture, recovery_finishes_a_committed_creation_and_undoes_one_without_commit) {
  ingest_journal(); // a data folder with a journal: no job is committed by its info.json alone
  reopen_journal();
  auto committed_study = receive_into(ingest_journal(), scratch.path() / "a", 3);
  auto uncommitted_study = receive_into(ingest_journal(), scratch.path() / "b", 2);
  // Both creations got as far as info.json; only the first wrote its
  // consumption record before the node stopped.
  auto half_created = [&](const journaled_study& study) {
    auto id = creating_job(study.key);
    auto input = layout.job_dir(id) / "INPUT";
    fs::create_directories(input);
    // Written out to incoming/ and linked into INPUT, as step 0 and 2 do.
    for (auto& [sop, content] : study.files) {
      auto written_out = layout.incoming_instance(study.key.called_ae, study.key.calling_ae,
                                                  study.key.peer, study.key.study_uid, sop);
      fixtures::write_file(written_out, content);
      fs::create_hard_link(written_out, input / (sop + ".dcm"));
    }
    fixtures::write_file(layout.job_dir(id) / "info.json", "{}");
    return id;
  };
  auto committed = half_created(committed_study);
  auto uncommitted = half_created(uncommitted_study);
  std::vector<journal_ref> taken;
  for (auto& instance : committed_study.instances)
    taken.push_back(instance.record);
  ASSERT_TRUE(ingest_journal().consume({committed}, taken, true));

  reopen_journal();
  intake jobs{layout, *db, ingest_journal(), true};
  auto report = jobs.recover();
  ASSERT_EQ(report.resumed_jobs.size(), 1u);
  EXPECT_EQ(report.resumed_jobs[0].id, committed);
  EXPECT_EQ(report.resumed_jobs[0].state, job_state::queued);
  EXPECT_EQ(report.resumed_jobs[0].instances, 3);
  ASSERT_EQ(report.undone_jobs.size(), 1u);
  EXPECT_EQ(report.undone_jobs[0], uncommitted);
  EXPECT_FALSE(fs::exists(layout.job_dir(uncommitted)));
  ASSERT_EQ(report.pending.size(), 2u) << "the uncommitted study is pending again";
  for (auto& pending : report.pending) {
    EXPECT_EQ(pending.key.study_uid, uncommitted_study.key.study_uid);
    EXPECT_TRUE(pending.instance.record);
  }
  // The committed job's records are released, its instances in the store.
  EXPECT_EQ(ingest_journal().current_usage().live_records, 2u);
  for (auto& [sop, content] : committed_study.files)
    EXPECT_EQ(fixtures::read_file(layout.stored_instance(committed_study.key.study_uid, sop)),
              content);
}

TEST_F(intake_fixture, studies_completed_together_commit_together_and_one_that_cannot_fails_alone) {
  auto first = receive_into(ingest_journal(), scratch.path() / "a", 4);
  auto other = receive_into(ingest_journal(), scratch.path() / "b", 3);
  // The first study's sender sent one instance again after the study
  // completed: the next group of the same study, completed before the
  // job store got to the first.
  auto& resent = first.instances[1];
  auto copy = ingest_journal().append_instance(
      {"SMOOTH", "STORESCU", "127.0.0.1", first.key.study_uid, resent.sop_uid},
      first.files[resent.sop_uid]);
  ASSERT_TRUE(copy);
  ASSERT_FALSE(ingest_journal().wait_durable(*copy));
  auto again = resent;
  again.record = copy->ref;
  // A study whose files vanished from incoming/ before its job was made.
  auto gone = receive(layout, scratch.path() / "c", 2);
  for (auto& instance : gone.instances)
    fs::remove(instance.path);

  intake jobs{layout, *db, ingest_journal(), true};
  auto outcomes = jobs.create_jobs(
      std::vector<completed_study>{{first.key, "smooth", first.instances, 1, {}, false, 0, {}},
                                   {other.key, "smooth", other.instances, 2, {}, false, 0, {}},
                                   {gone.key, "smooth", gone.instances, 3, {}, false, 0, {}},
                                   {first.key, "smooth", {again}, 4, {}, false, 0, {}}});
  ASSERT_EQ(outcomes.size(), 4u);
  for (std::size_t i : {0u, 1u, 3u}) {
    ASSERT_TRUE(outcomes[i]) << i << ": " << outcomes[i].error().message;
    ASSERT_EQ(outcomes[i]->size(), 1u);
    EXPECT_EQ(outcomes[i]->front().state, job_state::queued);
  }
  ASSERT_FALSE(outcomes[2]);
  EXPECT_EQ(outcomes[2].error().code, ec::not_found);
  EXPECT_EQ((*outcomes[0])[0].instances, 4);
  EXPECT_EQ((*outcomes[1])[0].instances, 3);
  EXPECT_EQ((*outcomes[3])[0].instances, 1);
  for (auto* study : {&first, &other}) {
    auto& job = study == &first ? (*outcomes[0])[0] : (*outcomes[1])[0];
    for (auto& [sop, content] : study->files)
      EXPECT_EQ(fixtures::read_file(layout.job_dir(job.id) / "INPUT" / (sop + ".dcm")), content);
  }
  // The store keeps the later copy, the one the later job has.
  auto stored = layout.stored_instance(first.key.study_uid, resent.sop_uid);
  EXPECT_EQ(inode(stored),
            inode(layout.job_dir((*outcomes[3])[0].id) / "INPUT" / (resent.sop_uid + ".dcm")));
  for (auto& outcome : {outcomes[0], outcomes[1], outcomes[3]}) {
    auto row = db->find_job(outcome->front().id);
    ASSERT_TRUE(row && *row);
    EXPECT_EQ((*row)->state, job_state::queued);
  }
  EXPECT_EQ(ingest_journal().current_usage().live_records, 0u);
  // One consumption record names them all: after a restart nothing is
  // pending and nothing is left to finish.
  reopen_journal();
  intake restarted{layout, *db, ingest_journal(), true};
  auto report = restarted.recover();
  EXPECT_TRUE(report.pending.empty());
  EXPECT_TRUE(report.resumed_jobs.empty());
  EXPECT_TRUE(report.undone_jobs.empty());
}
