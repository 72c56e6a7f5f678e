// The database schema moves forward without losing what older versions wrote.

#include "pipeline/jobs/database.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

using namespace dcmstreams;

namespace {

// A send as schema version 2 (before sends could de-identify) stored it.
const char* version_2_database = R"sql(
CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, state TEXT NOT NULL,
  called_ae TEXT NOT NULL, calling_ae TEXT NOT NULL, peer TEXT NOT NULL, study_uid TEXT NOT NULL,
  series_uid TEXT NOT NULL DEFAULT '', instances INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0, received_ms INTEGER NOT NULL DEFAULT 0,
  completed_ms INTEGER NOT NULL DEFAULT 0, started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
  routed_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sends (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL,
  rule TEXT NOT NULL, destination TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
  called_ae TEXT NOT NULL, calling_ae TEXT NOT NULL, associations INTEGER NOT NULL DEFAULT 1,
  transfer_syntax TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '', files_total INTEGER NOT NULL DEFAULT 0,
  files_sent INTEGER NOT NULL DEFAULT 0, files_failed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE send_files (send_id INTEGER NOT NULL, path TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', status INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '', PRIMARY KEY (send_id, path));
INSERT INTO sends (job_id, rule, destination, host, port, called_ae, calling_ae, state,
  files_total, files_sent) VALUES (7, 'r', 'pacs', '10.0.0.9', 104, 'PACS', 'NODE', 'done', 3, 3);
INSERT INTO jobs (stream, state, called_ae, calling_ae, peer, study_uid, finished_ms, routed_ms)
  VALUES ('ct', 'success', 'CT', 'MOD', '10.0.0.2', '1.2.3', 1000, 1000);
PRAGMA user_version=2;
)sql";

} // namespace

TEST(database, a_version_2_database_is_moved_forward_and_keeps_its_sends) {
  fixtures::temp_dir dir;
  auto file = dir / "dcmstreams.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, version_2_database, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  auto db = database::open(file);
  ASSERT_TRUE(db) << db.error().message;
  auto old = (*db)->find_send(1);
  ASSERT_TRUE(old && *old);
  EXPECT_EQ((**old).destination, "pacs");
  EXPECT_EQ((**old).files_sent, 3);
  EXPECT_EQ((**old).deidentify, "") << "older sends sent files as they were";
  auto old_job = (*db)->find_job(1);
  ASSERT_TRUE(old_job && *old_job);
  EXPECT_EQ((**old_job).study_uid, "1.2.3");
  EXPECT_EQ((**old_job).routed, 1000);
  EXPECT_EQ((**old_job).worker, "") << "older jobs ran on the node itself";
  EXPECT_EQ((**old_job).lost_runs, 0);
  EXPECT_EQ((**old_job).patient_name, "") << "older jobs were not described";
  EXPECT_EQ((**old_job).series, 0);
  EXPECT_EQ((**old_job).origin, "");
  auto moved = **old_job;
  moved.worker = "gpu-box-1";
  moved.lost_runs = 1;
  moved.patient_name = "DOE^JANE";
  moved.series = 3;
  moved.origin = "job 6 again with 2 late instances";
  ASSERT_FALSE((*db)->update_job(moved));
  auto updated = (*db)->find_job(1);
  ASSERT_TRUE(updated && *updated);
  EXPECT_EQ((**updated).worker, "gpu-box-1");
  EXPECT_EQ((**updated).lost_runs, 1);
  EXPECT_EQ((**updated).patient_name, "DOE^JANE");
  EXPECT_EQ((**updated).series, 3);
  EXPECT_EQ((**updated).origin, "job 6 again with 2 late instances");
  EXPECT_EQ((**updated).routed, 1000) << "updates leave the routing mark alone";

  send_task task;
  task.job_id = 8;
  task.rule = "r";
  task.destination = "research";
  task.host = "10.0.0.8";
  task.port = 104;
  task.called_ae = "RESEARCH";
  task.calling_ae = "NODE";
  task.deidentify = "shift_dates";
  auto id = (*db)->insert_send(task, {"/data/jobs/8/OUTPUT/a.dcm"});
  ASSERT_TRUE(id) << id.error().message;
  auto stored = (*db)->find_send(*id);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((**stored).deidentify, "shift_dates");
  // The throughput chart's intervals: kept, and forgotten after an hour.
  ASSERT_FALSE((*db)->record_throughput({1000, 5, 1, 2}, 0));
  ASSERT_FALSE((*db)->record_throughput({2000, 7, 0, 0}, 1500));
  auto intervals = (*db)->throughput_since(0);
  ASSERT_TRUE(intervals);
  ASSERT_EQ(intervals->size(), 1u) << "the one before 1500 is forgotten";
  EXPECT_EQ(intervals->front().at, 2000);
  EXPECT_EQ(intervals->front().instances, 7);
  db->reset();
  auto again = database::open(file);
  ASSERT_TRUE(again) << "a database of this version opens again: " << again.error().message;
}
