#include "pipeline/jobs/database.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <functional>

namespace dcmstreams {

namespace {

// The schema version this code writes; older files are migrated step by step.
constexpr int schema_version = 6;

const char* schema_v1 = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  stream      TEXT    NOT NULL,
  state       TEXT    NOT NULL,
  called_ae   TEXT    NOT NULL,
  calling_ae  TEXT    NOT NULL,
  peer        TEXT    NOT NULL,
  study_uid   TEXT    NOT NULL,
  series_uid  TEXT    NOT NULL DEFAULT '',
  instances   INTEGER NOT NULL DEFAULT 0,
  bytes       INTEGER NOT NULL DEFAULT 0,
  received_ms INTEGER NOT NULL DEFAULT 0,
  completed_ms INTEGER NOT NULL DEFAULT 0,
  started_ms  INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  message     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_by_stream ON jobs(stream, state, id);
CREATE INDEX IF NOT EXISTS jobs_by_study ON jobs(study_uid);
)sql";

const char* schema_v2 = R"sql(
ALTER TABLE jobs ADD COLUMN routed_ms INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET routed_ms = finished_ms WHERE finished_ms > 0;
CREATE TABLE IF NOT EXISTS sends (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id         INTEGER NOT NULL,
  rule           TEXT    NOT NULL,
  destination    TEXT    NOT NULL,
  host           TEXT    NOT NULL,
  port           INTEGER NOT NULL,
  called_ae      TEXT    NOT NULL,
  calling_ae     TEXT    NOT NULL,
  associations   INTEGER NOT NULL DEFAULT 1,
  transfer_syntax TEXT   NOT NULL DEFAULT '',
  state          TEXT    NOT NULL,
  attempts       INTEGER NOT NULL DEFAULT 0,
  created_ms     INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms    INTEGER NOT NULL DEFAULT 0,
  message        TEXT    NOT NULL DEFAULT '',
  files_total    INTEGER NOT NULL DEFAULT 0,
  files_sent     INTEGER NOT NULL DEFAULT 0,
  files_failed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sends_by_state ON sends(state, id);
CREATE INDEX IF NOT EXISTS sends_by_job ON sends(job_id);
CREATE TABLE IF NOT EXISTS send_files (
  send_id  INTEGER NOT NULL,
  path     TEXT    NOT NULL,
  state    TEXT    NOT NULL DEFAULT 'pending',
  status   INTEGER NOT NULL DEFAULT 0,
  message  TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (send_id, path)
);
)sql";

// Sends to destinations that de-identify what they get, and what pseudonyms
// stand for (deidentify.keep_mapping).
const char* schema_v3 = R"sql(
ALTER TABLE sends ADD COLUMN deidentify TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS pseudonyms (
  pseudonym  TEXT    NOT NULL,
  kind       TEXT    NOT NULL,
  original   TEXT    NOT NULL,
  job_id     INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pseudonym, kind)
);
)sql";

const char* schema_v4 = R"sql(
ALTER TABLE jobs ADD COLUMN worker TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lost_runs INTEGER NOT NULL DEFAULT 0;
)sql";

const char* schema_v5 = R"sql(
ALTER TABLE jobs ADD COLUMN patient_name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN patient_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN accession_number TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN study_date TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN study_description TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN modalities TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN series_count INTEGER NOT NULL DEFAULT 0;
)sql";

const char* schema_v6 = R"sql(
ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT '';
CREATE TABLE throughput (
  at_ms     INTEGER PRIMARY KEY,
  instances REAL NOT NULL,
  jobs      REAL NOT NULL,
  sends     REAL NOT NULL
);
)sql";

const char* send_columns = "id, job_id, rule, destination, host, port, called_ae, calling_ae, "
                           "associations, transfer_syntax, state, attempts, created_ms, "
                           "next_attempt_ms, finished_ms, message, files_total, files_sent, "
                           "files_failed, deidentify";

const char* job_columns = "id, stream, state, called_ae, calling_ae, peer, study_uid, series_uid, "
                          "instances, bytes, received_ms, completed_ms, started_ms, finished_ms, "
                          "message, worker, lost_runs, patient_name, patient_id, accession_number, "
                          "study_date, study_description, modalities, series_count, origin, "
                          "routed_ms";

// A prepared statement that finalizes itself.
class statement {
public:
  statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* handle() { return stmt_; }
  void bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int index, std::int64_t number) { sqlite3_bind_int64(stmt_, index, number); }
  int step() { return sqlite3_step(stmt_); }
  std::int64_t integer(int column) { return sqlite3_column_int64(stmt_, column); }
  double real(int column) { return sqlite3_column_double(stmt_, column); }
  std::string text(int column) {
    auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                : std::string();
  }

private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

template <class Row, class Read>
result<std::vector<Row>> collect_rows(statement& s, Read read, const std::string& what,
                                      const std::function<failure(const std::string&)>& fail) {
  std::vector<Row> rows;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    rows.push_back(read(s));
  if (rc != SQLITE_DONE)
    return fail(what);
  return rows;
}

// routed_ms is left out of updates: only mark_routed sets it, so that a job
// update racing with the router never undoes its mark.
void bind_job_fields(statement& s, const job_record& job, bool with_routed = true) {
  s.bind(1, job.stream);
  s.bind(2, std::string(to_string(job.state)));
  s.bind(3, job.called_ae);
  s.bind(4, job.calling_ae);
  s.bind(5, job.peer);
  s.bind(6, job.study_uid);
  s.bind(7, job.series_uid);
  s.bind(8, job.instances);
  s.bind(9, job.bytes);
  s.bind(10, job.received);
  s.bind(11, job.completed);
  s.bind(12, job.started);
  s.bind(13, job.finished);
  s.bind(14, job.message);
  s.bind(15, job.worker);
  s.bind(16, job.lost_runs);
  s.bind(17, job.patient_name);
  s.bind(18, job.patient_id);
  s.bind(19, job.accession_number);
  s.bind(20, job.study_date);
  s.bind(21, job.study_description);
  s.bind(22, job.modalities);
  s.bind(23, job.series);
  s.bind(24, job.origin);
  if (with_routed)
    s.bind(25, job.routed);
}

job_record read_job(statement& s) {
  job_record job;
  job.id = s.integer(0);
  job.stream = s.text(1);
  job.state = parse_job_state(s.text(2)).value_or(job_state::failed);
  job.called_ae = s.text(3);
  job.calling_ae = s.text(4);
  job.peer = s.text(5);
  job.study_uid = s.text(6);
  job.series_uid = s.text(7);
  job.instances = s.integer(8);
  job.bytes = s.integer(9);
  job.received = s.integer(10);
  job.completed = s.integer(11);
  job.started = s.integer(12);
  job.finished = s.integer(13);
  job.message = s.text(14);
  job.worker = s.text(15);
  job.lost_runs = s.integer(16);
  job.patient_name = s.text(17);
  job.patient_id = s.text(18);
  job.accession_number = s.text(19);
  job.study_date = s.text(20);
  job.study_description = s.text(21);
  job.modalities = s.text(22);
  job.series = s.integer(23);
  job.origin = s.text(24);
  job.routed = s.integer(25);
  return job;
}

} // namespace

result<std::unique_ptr<database>> database::open(const std::filesystem::path& file,
                                                 bool full_sync) {
  sqlite3* handle = nullptr;
  int rc =
      sqlite3_open_v2(file.c_str(), &handle,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close(handle);
    return failure{ec::database_error, file.string() + ": cannot open the database: " + why};
  }
  std::unique_ptr<database> db{new database(handle)};
  sqlite3_busy_timeout(handle, 5000);
  // WAL lets readers go on while a job is written; FULL makes each committed
  // job survive power loss, which the durability contract needs (jobs are
  // few, so the extra sync per commit is cheap).
  for (const char* pragma : {"PRAGMA journal_mode=WAL",
                             full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                             "PRAGMA foreign_keys=ON"})
    if (auto problem = db->execute(pragma))
      return *problem;
  statement version{handle, "PRAGMA user_version"};
  int current = version.step() == SQLITE_ROW ? static_cast<int>(version.integer(0)) : 0;
  if (current > schema_version)
    return failure{ec::database_error,
                   file.string() + ": the database was written by a newer dcmstreams (schema " +
                       std::to_string(current) +
                       "); upgrade dcmstreams or use another data folder"};
  if (current < 1) {
    if (auto problem = db->execute(schema_v1))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=1"))
      return *problem;
  }
  if (current < 2) {
    if (auto problem = db->execute(schema_v2))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=2"))
      return *problem;
  }
  if (current < 3) {
    if (auto problem = db->execute(schema_v3))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=3"))
      return *problem;
  }
  if (current < 4) {
    if (auto problem = db->execute(schema_v4))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=4"))
      return *problem;
  }
  if (current < 5) {
    if (auto problem = db->execute(schema_v5))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=5"))
      return *problem;
  }
  if (current < 6) {
    if (auto problem = db->execute(schema_v6))
      return *problem;
    if (auto problem = db->execute("PRAGMA user_version=6"))
      return *problem;
  }
  return db;
}

database::~database() {
  sqlite3_close(db_);
}

failure database::sqlite_failure(const std::string& what) const {
  return failure{ec::database_error, what + ": " + sqlite3_errmsg(db_)};
}

status database::execute(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error ? error : "unknown error";
    sqlite3_free(error);
    return failure{ec::database_error, std::string("database statement failed: ") + why};
  }
  return std::nullopt;
}

result<std::int64_t> database::insert_job(const job_record& job) {
  statement s{db_, "INSERT INTO jobs (stream, state, called_ae, calling_ae, peer, study_uid, "
                   "series_uid, instances, bytes, received_ms, completed_ms, started_ms, "
                   "finished_ms, message, worker, lost_runs, patient_name, patient_id, "
                   "accession_number, study_date, study_description, modalities, series_count, "
                   "origin, routed_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the job insert");
  bind_job_fields(s, job);
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot record the job for study " + job.study_uid);
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
}

status database::update_job(const job_record& job) {
  statement s{db_, "UPDATE jobs SET stream=?, state=?, called_ae=?, calling_ae=?, peer=?, "
                   "study_uid=?, series_uid=?, instances=?, bytes=?, received_ms=?, "
                   "completed_ms=?, started_ms=?, finished_ms=?, message=?, worker=?, lost_runs=?, "
                   "patient_name=?, patient_id=?, accession_number=?, study_date=?, "
                   "study_description=?, modalities=?, series_count=?, origin=? WHERE id=?"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the job update");
  bind_job_fields(s, job, false);
  s.bind(25, job.id);
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot update job " + std::to_string(job.id));
  return std::nullopt;
}

status database::in_transaction(const std::function<status()>& body) {
  if (auto problem = execute("BEGIN IMMEDIATE"))
    return problem;
  auto problem = body();
  if (!problem)
    problem = execute("COMMIT");
  if (problem)
    execute("ROLLBACK");
  return problem;
}

status database::update_jobs(const std::vector<job_record>& jobs) {
  return in_transaction([&]() -> status {
    for (auto& job : jobs)
      if (auto problem = update_job(job))
        return problem;
    return std::nullopt;
  });
}

status database::delete_job(std::int64_t id) {
  statement s{db_, "DELETE FROM jobs WHERE id=?"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the job delete");
  s.bind(1, id);
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot delete job " + std::to_string(id));
  return std::nullopt;
}

result<std::optional<job_record>> database::find_job(std::int64_t id) {
  std::string sql = std::string("SELECT ") + job_columns + " FROM jobs WHERE id=?";
  statement s{db_, sql.c_str()};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the job lookup");
  s.bind(1, id);
  int rc = s.step();
  if (rc == SQLITE_ROW)
    return std::optional<job_record>{read_job(s)};
  if (rc == SQLITE_DONE)
    return std::optional<job_record>{};
  return sqlite_failure("cannot read job " + std::to_string(id));
}

result<std::vector<job_record>> database::jobs_in_state(job_state state) {
  std::string sql = std::string("SELECT ") + job_columns + " FROM jobs WHERE state=? ORDER BY id";
  statement s{db_, sql.c_str()};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the job query");
  s.bind(1, std::string(to_string(state)));
  std::vector<job_record> jobs;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    jobs.push_back(read_job(s));
  if (rc != SQLITE_DONE)
    return sqlite_failure(std::string("cannot list ") + to_string(state) + " jobs");
  return jobs;
}

namespace {
send_task read_send(statement& s);
} // namespace

result<job_page> database::list_jobs(const job_filter& filter) {
  std::string where = " WHERE 1=1";
  std::vector<std::string> texts;
  std::vector<std::int64_t> numbers;
  // Parameters are bound in order: texts first, then numbers.
  if (!filter.stream.empty()) {
    where += " AND stream = ?";
    texts.push_back(filter.stream);
  }
  if (!filter.state.empty()) {
    where += " AND state = ?";
    texts.push_back(filter.state);
  }
  if (!filter.sender.empty()) {
    where += " AND (calling_ae = ? OR peer = ?)";
    texts.push_back(filter.sender);
    texts.push_back(filter.sender);
  }
  if (!filter.text.empty()) {
    where += " AND (study_uid LIKE ? OR stream LIKE ? OR calling_ae LIKE ? OR called_ae LIKE ? "
             "OR peer LIKE ? OR message LIKE ? OR study_description LIKE ? OR modalities LIKE ? ";
    if (filter.search_patient)
      where += "OR patient_name LIKE ? OR patient_id LIKE ? OR accession_number LIKE ? ";
    where += "OR CAST(id AS TEXT) = ?)";
    std::string like = "%" + filter.text + "%";
    for (int i = 0; i < (filter.search_patient ? 11 : 8); ++i)
      texts.push_back(like);
    texts.push_back(filter.text);
  }
  if (filter.from) {
    where += " AND received_ms >= ?";
    numbers.push_back(filter.from);
  }
  if (filter.to) {
    where += " AND received_ms < ?";
    numbers.push_back(filter.to);
  }
  auto bind_all = [&](statement& s) {
    int index = 1;
    for (auto& t : texts)
      s.bind(index++, t);
    for (auto n : numbers)
      s.bind(index++, n);
    return index;
  };
  job_page page;
  std::string count_sql = "SELECT COUNT(*) FROM jobs" + where;
  statement count{db_, count_sql.c_str()};
  if (!count.prepared())
    return sqlite_failure("cannot prepare the job count");
  bind_all(count);
  if (count.step() != SQLITE_ROW)
    return sqlite_failure("cannot count jobs");
  page.total = count.integer(0);
  std::string sql = std::string("SELECT ") + job_columns + " FROM jobs" + where +
                    " ORDER BY id DESC LIMIT ? OFFSET ?";
  statement list{db_, sql.c_str()};
  int next = bind_all(list);
  list.bind(next, filter.limit);
  list.bind(next + 1, filter.offset);
  auto jobs = collect_rows<job_record>(list, read_job, "cannot list jobs",
                                       [this](const std::string& w) { return sqlite_failure(w); });
  if (!jobs)
    return jobs.error();
  page.jobs = std::move(*jobs);
  return page;
}

result<std::vector<job_record>> database::scrub_candidates(epoch_ms finished_before,
                                                           std::int64_t limit) {
  // Finished, routed (or never to be routed), and every send of it done: a
  // failed send's files wait for a retry and are not the scrubber's to take.
  std::string sql = std::string("SELECT ") + job_columns +
                    " FROM jobs WHERE state IN ('success', 'failed', 'cancelled', 'skipped')"
                    " AND (routed_ms > 0 OR state IN ('cancelled', 'skipped'))"
                    " AND COALESCE(NULLIF(finished_ms, 0), completed_ms) < ?"
                    " AND NOT EXISTS (SELECT 1 FROM sends WHERE sends.job_id = jobs.id"
                    " AND sends.state <> 'done')"
                    " ORDER BY COALESCE(NULLIF(finished_ms, 0), completed_ms), id LIMIT ?";
  statement s{db_, sql.c_str()};
  s.bind(1, finished_before);
  s.bind(2, limit);
  return collect_rows<job_record>(s, read_job, "cannot list jobs to scrub",
                                  [this](const std::string& w) { return sqlite_failure(w); });
}

result<std::vector<send_task>> database::sends_of_job(std::int64_t job_id) {
  std::string sql =
      std::string("SELECT ") + send_columns + " FROM sends WHERE job_id=? ORDER BY id";
  statement s{db_, sql.c_str()};
  s.bind(1, job_id);
  return collect_rows<send_task>(s, read_send,
                                 "cannot list the sends of job " + std::to_string(job_id),
                                 [this](const std::string& w) { return sqlite_failure(w); });
}

status database::mark_routed(std::int64_t id, epoch_ms when) {
  statement s{db_, "UPDATE jobs SET routed_ms=? WHERE id=?"};
  s.bind(1, when);
  s.bind(2, id);
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot mark job " + std::to_string(id) + " as routed");
  return std::nullopt;
}

result<std::vector<job_record>> database::jobs_to_route() {
  std::string sql = std::string("SELECT ") + job_columns +
                    " FROM jobs WHERE state IN ('success', 'failed') AND routed_ms = 0 ORDER BY id";
  statement s{db_, sql.c_str()};
  return collect_rows<job_record>(s, read_job, "cannot list the jobs to route",
                                  [this](const std::string& w) { return sqlite_failure(w); });
}

result<std::vector<database::duration_stats>> database::durations_by_stream() {
  statement s{db_, "SELECT stream, COUNT(*), AVG(d), AVG(d * d) FROM (SELECT stream, "
                   "(finished_ms - started_ms) / 1000.0 AS d FROM jobs WHERE state = 'success' "
                   "AND started_ms > 0 AND finished_ms >= started_ms) GROUP BY stream"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the duration query");
  std::vector<duration_stats> stats;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    duration_stats d;
    d.stream = s.text(0);
    d.runs = s.integer(1);
    d.mean_s = s.real(2);
    d.std_s = std::sqrt(std::max(0.0, s.real(3) - d.mean_s * d.mean_s));
    stats.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE)
    return sqlite_failure("cannot read run times");
  return stats;
}

namespace {

void bind_send_fields(statement& s, const send_task& t) {
  s.bind(1, t.job_id);
  s.bind(2, t.rule);
  s.bind(3, t.destination);
  s.bind(4, t.host);
  s.bind(5, t.port);
  s.bind(6, t.called_ae);
  s.bind(7, t.calling_ae);
  s.bind(8, t.associations);
  s.bind(9, t.transfer_syntax);
  s.bind(10, std::string(to_string(t.state)));
  s.bind(11, t.attempts);
  s.bind(12, t.created);
  s.bind(13, t.next_attempt);
  s.bind(14, t.finished);
  s.bind(15, t.message);
  s.bind(16, t.files_total);
  s.bind(17, t.files_sent);
  s.bind(18, t.files_failed);
  s.bind(19, t.deidentify);
}

send_task read_send(statement& s) {
  send_task t;
  t.id = s.integer(0);
  t.job_id = s.integer(1);
  t.rule = s.text(2);
  t.destination = s.text(3);
  t.host = s.text(4);
  t.port = s.integer(5);
  t.called_ae = s.text(6);
  t.calling_ae = s.text(7);
  t.associations = s.integer(8);
  t.transfer_syntax = s.text(9);
  t.state = parse_send_state(s.text(10)).value_or(send_state::failed);
  t.attempts = s.integer(11);
  t.created = s.integer(12);
  t.next_attempt = s.integer(13);
  t.finished = s.integer(14);
  t.message = s.text(15);
  t.files_total = s.integer(16);
  t.files_sent = s.integer(17);
  t.files_failed = s.integer(18);
  t.deidentify = s.text(19);
  return t;
}

} // namespace

result<std::int64_t> database::insert_send(send_task task, const std::vector<std::string>& files) {
  std::int64_t id = 0;
  auto problem = in_transaction([&]() -> status {
    statement s{db_, "INSERT INTO sends (job_id, rule, destination, host, port, called_ae, "
                     "calling_ae, associations, transfer_syntax, state, attempts, created_ms, "
                     "next_attempt_ms, finished_ms, message, files_total, files_sent, "
                     "files_failed, deidentify) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"};
    task.files_total = static_cast<std::int64_t>(files.size());
    bind_send_fields(s, task);
    if (!s.prepared() || s.step() != SQLITE_DONE)
      return sqlite_failure("cannot record the send of job " + std::to_string(task.job_id));
    id = static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
    statement f{db_, "INSERT OR IGNORE INTO send_files (send_id, path) VALUES (?, ?)"};
    for (auto& path : files) {
      sqlite3_reset(f.handle());
      f.bind(1, id);
      f.bind(2, path);
      if (f.step() != SQLITE_DONE)
        return sqlite_failure("cannot record the files of send " + std::to_string(id));
    }
    return std::nullopt;
  });
  if (problem)
    return *problem;
  return id;
}

status database::update_send(const send_task& task) {
  statement s{db_, "UPDATE sends SET job_id=?, rule=?, destination=?, host=?, port=?, "
                   "called_ae=?, calling_ae=?, associations=?, transfer_syntax=?, state=?, "
                   "attempts=?, created_ms=?, next_attempt_ms=?, finished_ms=?, message=?, "
                   "files_total=?, files_sent=?, files_failed=?, deidentify=? WHERE id=?"};
  bind_send_fields(s, task);
  s.bind(20, task.id);
  if (!s.prepared() || s.step() != SQLITE_DONE)
    return sqlite_failure("cannot update send " + std::to_string(task.id));
  return std::nullopt;
}

result<std::optional<send_task>> database::find_send(std::int64_t id) {
  std::string sql = std::string("SELECT ") + send_columns + " FROM sends WHERE id=?";
  statement s{db_, sql.c_str()};
  s.bind(1, id);
  int rc = s.step();
  if (rc == SQLITE_ROW)
    return std::optional<send_task>{read_send(s)};
  if (rc == SQLITE_DONE)
    return std::optional<send_task>{};
  return sqlite_failure("cannot read send " + std::to_string(id));
}

result<std::vector<send_task>> database::unfinished_sends() {
  std::string sql = std::string("SELECT ") + send_columns +
                    " FROM sends WHERE state NOT IN ('done', 'failed') ORDER BY id";
  statement s{db_, sql.c_str()};
  return collect_rows<send_task>(s, read_send, "cannot list unfinished sends",
                                 [this](const std::string& w) { return sqlite_failure(w); });
}

result<std::vector<send_task>> database::recent_sends(std::int64_t limit) {
  std::string sql = std::string("SELECT ") + send_columns + " FROM sends ORDER BY id DESC LIMIT ?";
  statement s{db_, sql.c_str()};
  s.bind(1, limit);
  return collect_rows<send_task>(s, read_send, "cannot list sends",
                                 [this](const std::string& w) { return sqlite_failure(w); });
}

status database::record_pseudonyms(const std::vector<pseudonym_record>& records,
                                   std::int64_t job_id) {
  if (records.empty())
    return std::nullopt;
  return in_transaction([&]() -> status {
    statement s{db_, "INSERT OR IGNORE INTO pseudonyms (pseudonym, kind, original, job_id, "
                     "created_ms) VALUES (?, ?, ?, ?, ?)"};
    auto now = now_ms();
    for (auto& r : records) {
      sqlite3_reset(s.handle());
      s.bind(1, r.pseudonym);
      s.bind(2, r.kind);
      s.bind(3, r.original);
      s.bind(4, job_id);
      s.bind(5, now);
      if (!s.prepared() || s.step() != SQLITE_DONE)
        return sqlite_failure("cannot keep the pseudonyms of job " + std::to_string(job_id));
    }
    return std::nullopt;
  });
}

status database::record_throughput(const throughput_sample& sample, epoch_ms forget_before) {
  statement insert{db_, "INSERT OR REPLACE INTO throughput (at_ms, instances, jobs, sends) "
                        "VALUES (?, ?, ?, ?)"};
  if (!insert.prepared())
    return sqlite_failure("cannot prepare the throughput insert");
  insert.bind(1, sample.at);
  sqlite3_bind_double(insert.handle(), 2, sample.instances);
  sqlite3_bind_double(insert.handle(), 3, sample.jobs);
  sqlite3_bind_double(insert.handle(), 4, sample.sends);
  if (insert.step() != SQLITE_DONE)
    return sqlite_failure("cannot keep the throughput");
  statement forget{db_, "DELETE FROM throughput WHERE at_ms < ?"};
  if (!forget.prepared())
    return sqlite_failure("cannot prepare the throughput delete");
  forget.bind(1, forget_before);
  if (forget.step() != SQLITE_DONE)
    return sqlite_failure("cannot forget old throughput");
  return std::nullopt;
}

result<std::vector<throughput_sample>> database::throughput_since(epoch_ms since) {
  statement s{
      db_, "SELECT at_ms, instances, jobs, sends FROM throughput WHERE at_ms >= ? ORDER BY at_ms"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the throughput query");
  s.bind(1, since);
  std::vector<throughput_sample> samples;
  while (s.step() == SQLITE_ROW)
    samples.push_back({s.integer(0), s.real(1), s.real(2), s.real(3)});
  return samples;
}

result<std::vector<database::kept_pseudonym>>
database::find_pseudonym(const std::string& pseudonym) {
  statement s{db_, "SELECT pseudonym, kind, original, job_id, created_ms FROM pseudonyms "
                   "WHERE pseudonym=? ORDER BY kind"};
  s.bind(1, pseudonym);
  return collect_rows<kept_pseudonym>(
      s,
      [](statement& row) {
        return kept_pseudonym{
            {row.text(0), row.text(1), row.text(2)}, row.integer(3), row.integer(4)};
      },
      "cannot look up a pseudonym", [this](const std::string& w) { return sqlite_failure(w); });
}

result<std::vector<send_file>> database::send_files(std::int64_t send_id) {
  statement s{db_, "SELECT path, state, status, message FROM send_files WHERE send_id=? "
                   "ORDER BY path"};
  s.bind(1, send_id);
  return collect_rows<send_file>(
      s,
      [](statement& row) {
        return send_file{row.text(0),
                         parse_file_send_state(row.text(1)).value_or(file_send_state::pending),
                         row.integer(2), row.text(3)};
      },
      "cannot list the files of send " + std::to_string(send_id),
      [this](const std::string& w) { return sqlite_failure(w); });
}

status database::update_send_file(std::int64_t send_id, const send_file& file) {
  statement s{db_, "UPDATE send_files SET state=?, status=?, message=? WHERE send_id=? AND path=?"};
  s.bind(1, std::string(to_string(file.state)));
  s.bind(2, file.status);
  s.bind(3, file.message);
  s.bind(4, send_id);
  s.bind(5, file.path);
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot record the progress of send " + std::to_string(send_id));
  return std::nullopt;
}

status database::writable() {
  if (auto problem = execute("CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY, at_ms "
                             "INTEGER NOT NULL)"))
    return problem;
  statement s{db_, "INSERT OR REPLACE INTO heartbeat (id, at_ms) VALUES (1, ?)"};
  if (!s.prepared())
    return sqlite_failure("cannot prepare the heartbeat");
  s.bind(1, now_ms());
  if (s.step() != SQLITE_DONE)
    return sqlite_failure("cannot write to the database");
  return std::nullopt;
}

} // namespace dcmstreams
