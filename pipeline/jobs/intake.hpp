#pragma once
// Turning a completed study into a job, crash-safely, and finding on start
// what a stopped node left behind (DESIGN §6).
//
// A job is born in steps, each one repeatable:
//   0. instances held in the journal are written out as files in incoming/
//      (not synced one by one);
//   1. a `creating` row in SQLite gives the job its id;
//   2. jobs/<id>/INPUT/ gets a hard link to every instance in incoming/ that
//      the stream accepts (all of them, or one series with group_by series);
//   3. jobs/<id>/info.json is written;
//   4. one syncfs makes all of it durable, and a consumption record naming
//      the study's jobs and every journal record they took is appended to the
//      journal and flushed: the commit point;
//   5. each incoming file of the study is renamed into store/<study>/ (if it
//      is still the file that arrived: same inode);
//   6. the row becomes `queued` (or `skipped` when nothing was accepted), and
//      the journal records are released.
// On start, a `creating` job named by a consumption record is finished from
// step 5; any other is undone (its instances are still pending in the journal
// or incoming/). On the first start over a data folder of a version without
// a journal, a `creating` job with info.json is finished, as that version did.

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/foundation/spare_files.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/job.hpp"
#include "pipeline/jobs/journal.hpp"
#include "pipeline/jobs/store.hpp"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace dcmstreams {

/// What groups instances into one study (DESIGN §2).
struct study_key {
  std::string called_ae;
  std::string calling_ae;
  std::string peer;
  std::string study_uid;

  bool operator<(const study_key& other) const {
    return std::tie(called_ae, calling_ae, peer, study_uid) <
           std::tie(other.called_ae, other.calling_ae, other.peer, other.study_uid);
  }
  bool operator==(const study_key& other) const {
    return std::tie(called_ae, calling_ae, peer, study_uid) ==
           std::tie(other.called_ae, other.calling_ae, other.peer, other.study_uid);
  }
  /// "study 1.2.3 from STORESCU@127.0.0.1 to SMOOTH", for logs.
  std::string describe() const;
};

/// One instance as it arrived: a journal record, or a file in incoming/.
struct arrived_instance {
  std::string sop_uid;
  std::string path; // empty for a journal record until the intake writes it out
  std::uint64_t bytes = 0;
  std::uint64_t inode = 0; // of the file as it arrived; a later copy has another
  journal_ref record;
  // What a stream's complete_when looks at; empty for instances recovered
  // after a restart (their studies complete by the quiet period).
  std::string series_uid;
  std::string modality;
  std::string series_description;
};

struct completed_study {
  study_key key;
  std::string stream;
  std::vector<arrived_instance> instances;
  epoch_ms first_arrival = 0;
  std::vector<attribute_match> accept; // the stream's `accept`; empty: all
  bool by_series = false;              // the stream's `group_by: series`
  /// Instances that came after this study's job `late_of` was made, and the
  /// stream's `late` policy for them: "ignore" (a skipped job keeps them) or
  /// "append_and_rerun" (a new job of them and the earlier job's INPUT).
  std::int64_t late_of = 0;
  std::string late;
};

struct recovered_instance {
  study_key key;
  arrived_instance instance;
};

struct recovery_report {
  std::vector<job_record> resumed_jobs;    // finished from step 4, now queued
  std::vector<std::int64_t> undone_jobs;   // removed; their instances are pending again
  std::vector<recovered_instance> pending; // instances of studies still arriving
  std::size_t removed_partial_files = 0;   // interrupted receptions in incoming/.tmp
  std::vector<std::string> problems;       // files that could not be read, in words
};

class intake {
public:
  intake(store_layout layout, database& db, journal& journal, bool durable)
      : layout_(std::move(layout)), db_(db), journal_(journal), durable_(durable) {}

  /// Creates the job folders for `study` (one, or one per series) and records
  /// them as queued; a study whose instances the stream accepts none of gets
  /// one `skipped` job. Instances that vanished from incoming/ meanwhile are
  /// left out (and named in the job's message); a study with none left is an
  /// error.
  result<std::vector<job_record>> create_jobs(const completed_study& study);
  /// The same for several studies with one commit: one syncfs, one
  /// consumption record naming every job, one more syncfs after their
  /// instances moved to the store, one database transaction. A study that
  /// cannot become a job (its instances gone) fails alone; a commit that
  /// fails (a full disk) undoes them all. Each study's outcome in order.
  std::vector<result<std::vector<job_record>>>
  create_jobs(const std::vector<completed_study>& studies);

  /// Finishes or undoes interrupted job creations and lists the pending
  /// instances left in incoming/.
  recovery_report recover();

  /// Journal records of copies that a later copy of the same instance
  /// replaced while their study was pending: consumed now (not durably: a
  /// crash only brings both copies back, and the later one wins again), so
  /// that a study sent again and again holds neither memory nor journal
  /// segments for every copy until it completes.
  void discard_replaced(const std::vector<journal_ref>& records);

  /// The instances of studies still arriving: files in incoming/ (not the
  /// files being received), then the journal's pending records, oldest
  /// first; files that cannot be read are named in `problems`.
  std::vector<recovered_instance> pending_instances(std::vector<std::string>& problems) const;

private:
  /// A study whose jobs are made but not yet committed.
  struct prepared_study {
    completed_study study;             // its instances' paths now in incoming/
    std::vector<job_record> jobs;      // rows `creating`, folders complete
    std::vector<journal_ref> consumed; // its records and older copies they replace
  };
  /// Steps 1 to 4 for one study; undone on failure.
  result<prepared_study> prepare(const completed_study& arrived);
  /// Step 0: the study's journal records as files in incoming/.
  status write_out(completed_study& study);
  /// Empty files made ahead of time for write_out (started after recovery,
  /// which clears the folder they live in).
  spare_file_pool& spares();
  /// Steps 2 to 4 for one job of `instances`; nothing synced (the commit's
  /// syncfs covers it).
  result<job_record> create_job(const completed_study& study,
                                const std::vector<const arrived_instance*>& instances,
                                const std::string& series_uid, job_state final_state,
                                const std::string& note);
  /// For late: "append_and_rerun": links the earlier job's INPUT entries
  /// that the late instances do not replace into `input`; how many and
  /// their bytes.
  std::pair<std::int64_t, std::int64_t> link_earlier_inputs(std::int64_t earlier,
                                                            const std::filesystem::path& input);
  /// Step 6 for incoming files (file name, inode as it arrived); each moves
  /// only if it still is that file, so a newer copy stays pending. With
  /// `sync_folders`, the folders are synced (a caller that syncs the whole
  /// file system afterwards passes false).
  status move_to_store(const study_key& key,
                       const std::vector<std::pair<std::string, std::uint64_t>>& files,
                       bool sync_folders);
  /// Steps 6 and 7 for a recovered job, from its INPUT/ listing.
  status finish_recovered(job_record& job);
  /// Removes a job's folder and row: an interrupted or failed creation.
  status undo_creation(std::int64_t id);
  /// Removes `creating` rows without info.json, left by a creation whose undo
  /// failed (the database was full too); none is in progress meanwhile.
  void discard_abandoned_creations();

  /// Replaced records of the study's instances still pending in the journal
  /// (a discard that failed or never arrived): the job consumes them too.
  std::vector<journal_ref> replaced_records(const completed_study& study) const;

  store_layout layout_;
  database& db_;
  journal& journal_;
  bool durable_;
  std::unique_ptr<spare_file_pool> spares_;
};

} // namespace dcmstreams
