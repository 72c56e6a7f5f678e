#include "pipeline/jobs/intake.hpp"

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/views.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <system_error>

namespace dcmstreams {

namespace fs = std::filesystem;

std::string study_key::describe() const {
  return "study " + study_uid + " from " + calling_ae + "@" + peer + " to " + called_ae;
}

namespace {

// Removes a folder if it is empty; anything else in it is left alone.
void remove_if_empty(const fs::path& dir) {
  ::rmdir(dir.c_str());
}

} // namespace

namespace {

std::uint64_t inode_of(const fs::path& p) {
  struct stat s {};
  return ::stat(p.c_str(), &s) == 0 ? static_cast<std::uint64_t>(s.st_ino) : 0;
}

} // namespace

status intake::undo_creation(std::int64_t id) {
  std::error_code ignored;
  fs::remove_all(layout_.job_dir(id), ignored);
  return db_.delete_job(id);
}

void intake::discard_abandoned_creations() {
  auto creating = db_.jobs_in_state(job_state::creating);
  if (!creating)
    return;
  for (auto& job : *creating) {
    auto dir = layout_.job_dir(job.id);
    if (fs::exists(dir / "info.json"))
      continue; // complete but for its last steps: recovery at the next start finishes it
    if (!undo_creation(job.id))
      log::info("intake", "removed job " + std::to_string(job.id) +
                              ", whose creation failed earlier and could not be undone then");
  }
}

namespace {
// Files kept ready for a completing study's instances: a large study's worth.
constexpr std::size_t spare_file_count = 1024;
// The refill yields to ingest: creating a file costs more CPU than receiving an instance.
constexpr int spare_refill_niceness = 10;
} // namespace

spare_file_pool& intake::spares() {
  if (!spares_)
    spares_ = std::make_unique<spare_file_pool>(layout_.receive_dir(), "job", spare_file_count,
                                                false, spare_refill_niceness);
  return *spares_;
}

status intake::write_out(completed_study& study) {
  auto& key = study.key;
  bool folder_made = false;
  for (auto& instance : study.instances) {
    if (!instance.record)
      continue;
    auto path = layout_.incoming_instance(key.called_ae, key.calling_ae, key.peer, key.study_uid,
                                          instance.sop_uid);
    if (!folder_made) {
      if (auto problem = create_directories(path.parent_path(), false))
        return problem;
      folder_made = true;
    }
    auto data = journal_.read_instance(instance.record);
    if (!data)
      return failure{data.error().code, key.describe() + ", instance " + instance.sop_uid + ": " +
                                            data.error().message};
    // Not synced here: one syncfs covers the whole study before the commit.
    auto spare = spares().take();
    int fd = spare.error != 0 ? -1 : ::open(spare.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      if (auto problem = write_file_atomically(path, *data, false))
        return problem;
    } else {
      int error = write_fully(fd, *data);
      if (::close(fd) != 0 && error == 0)
        error = errno;
      if (error == 0 && ::rename(spare.path.c_str(), path.c_str()) != 0)
        error = errno;
      if (error != 0) {
        ::unlink(spare.path.c_str());
        return failure{ec::io_error, path.string() +
                                         ": cannot write the instance out of the "
                                         "journal: " +
                                         errno_text(error)};
      }
    }
    instance.path = path.string();
    instance.inode = inode_of(path);
  }
  return std::nullopt;
}

result<intake::prepared_study> intake::prepare(const completed_study& arrived) {
  prepared_study prepared{arrived, {}, {}};
  auto& study = prepared.study;
  if (auto problem = write_out(study))
    return *problem;
  prepared.consumed = replaced_records(study);
  for (auto& instance : study.instances)
    if (instance.record)
      prepared.consumed.push_back(instance.record);
  // Which instances the stream takes, and in which job.
  auto filter = attribute_filter::compile(study.accept);
  if (!filter)
    return filter.error();
  std::vector<std::string> wanted = filter->attributes();
  if (study.by_series)
    wanted.push_back("SeriesInstanceUID");
  std::map<std::string, std::vector<const arrived_instance*>> partitions; // by series, or ""
  std::size_t refused = 0, unreadable = 0;
  for (auto& instance : study.instances) {
    if (wanted.empty()) {
      partitions[""].push_back(&instance);
      continue;
    }
    auto values = read_attributes(instance.path, wanted);
    if (!values) {
      // Vanished or unreadable: it cannot enter a job.
      ++unreadable;
      continue;
    }
    if (!filter->matches(*values)) {
      ++refused;
      continue;
    }
    partitions[study.by_series ? (*values)["SeriesInstanceUID"] : ""].push_back(&instance);
  }

  auto& jobs = prepared.jobs;
  auto undo_all = [&] {
    for (auto& job : jobs)
      undo_creation(job.id);
  };
  if (study.late_of != 0 && study.late == "ignore" && !partitions.empty()) {
    // Kept in the store like any study, run by no job.
    partitions.clear();
    auto ignored = create_job(
        study, {}, "", job_state::skipped,
        std::to_string(study.instances.size()) + " instances arrived after the study's job " +
            std::to_string(study.late_of) + " was made; ignored (late: \"ignore\")");
    if (!ignored)
      return ignored.error();
    jobs.push_back(*ignored);
  }
  if (partitions.empty() && jobs.empty()) {
    if (unreadable == study.instances.size())
      return failure{ec::not_found, study.key.describe() + ": none of its " +
                                        std::to_string(study.instances.size()) +
                                        " instances is still in the incoming folder"};
    auto skipped = create_job(study, {}, "", job_state::skipped,
                              "none of the " + std::to_string(study.instances.size()) +
                                  " instances matches the stream's accept filter (" +
                                  filter->describe() + ")");
    if (!skipped)
      return skipped.error();
    jobs.push_back(*skipped);
  }
  for (auto& [series, members] : partitions) {
    std::string note;
    if (refused > 0)
      note = std::to_string(refused) + " instances not accepted by the filter (" +
             filter->describe() + ")";
    auto job = create_job(study, members, series, job_state::queued, note);
    if (!job) {
      if (job.error().code == ec::not_found && partitions.size() > 1)
        continue; // that series vanished; the others go on
      undo_all();
      return job.error();
    }
    jobs.push_back(*job);
  }
  if (jobs.empty())
    return failure{ec::not_found, study.key.describe() + ": no instance left to make a job of"};
  return prepared;
}

result<std::vector<job_record>> intake::create_jobs(const completed_study& study) {
  return std::move(create_jobs(std::vector<completed_study>{study}).front());
}

std::vector<result<std::vector<job_record>>>
intake::create_jobs(const std::vector<completed_study>& studies) {
  // A creation that failed on a full disk may not have been able to remove its
  // row then: it must not linger as a ghost beside the job that follows.
  discard_abandoned_creations();
  std::vector<result<std::vector<job_record>>> outcomes;
  std::vector<prepared_study> batch;
  for (auto& study : studies) {
    auto prepared = prepare(study);
    if (!prepared) {
      outcomes.emplace_back(prepared.error());
      continue;
    }
    outcomes.emplace_back(std::vector<job_record>{}); // set once committed
    batch.push_back(std::move(*prepared));
  }
  if (batch.empty())
    return outcomes;
  std::vector<std::int64_t> ids;
  std::vector<journal_ref> consumed;
  for (auto& prepared : batch) {
    for (auto& job : prepared.jobs)
      ids.push_back(job.id);
    consumed.insert(consumed.end(), prepared.consumed.begin(), prepared.consumed.end());
  }
  // A later study of the same sender in the batch names the copies an earlier
  // one keeps as older copies too.
  std::sort(consumed.begin(), consumed.end());
  consumed.erase(std::unique(consumed.begin(), consumed.end()), consumed.end());
  auto fail_all = [&](const failure& problem) {
    for (auto& prepared : batch)
      for (auto& job : prepared.jobs)
        undo_creation(job.id);
    for (auto& outcome : outcomes)
      if (outcome)
        outcome = problem;
    return outcomes;
  };

  // The commit point: once the consumption record is durable the jobs exist
  // and the journal records are theirs; before it, a crash undoes the jobs.
  if (durable_)
    if (auto problem = sync_file_system(layout_.jobs_dir()))
      return fail_all(*problem);
  auto consumption = journal_.consume(ids, consumed, durable_);
  if (!consumption)
    return fail_all(consumption.error());

  // From here on a failure does not undo: the next start finishes the jobs.
  bool finished = true;
  for (auto& prepared : batch) {
    std::vector<std::pair<std::string, std::uint64_t>> files;
    for (auto& instance : prepared.study.instances)
      files.emplace_back(fs::path(instance.path).filename().string(), instance.inode);
    if (auto problem = move_to_store(prepared.study.key, files, false)) {
      log::error("intake", problem->message + "; the next start moves the rest");
      finished = false;
    }
  }
  // The moves are durable before any job is queued: a queued job whose
  // instances were back in incoming/ after a crash would run twice.
  if (durable_)
    if (auto problem = sync_file_system(layout_.jobs_dir())) {
      log::error("intake", problem->message + "; the next start finishes the jobs");
      finished = false;
    }
  std::vector<job_record> created;
  for (auto& prepared : batch)
    created.insert(created.end(), prepared.jobs.begin(), prepared.jobs.end());
  if (finished)
    if (auto problem = db_.update_jobs(created)) {
      log::error("intake", problem->message + "; the next start queues the jobs");
      finished = false;
    }
  if (finished) {
    consumed.push_back(*consumption);
    journal_.release(consumed);
  }
  std::size_t next = 0;
  for (auto& outcome : outcomes)
    if (outcome)
      outcome = std::move(batch[next++].jobs);
  return outcomes;
}

namespace {

/// Who and what the job is about, for lists and search: the patient and
/// study from the first readable instance (one read per job), modalities and
/// series from what the listener saw of each instance as it arrived.
void take_study_facts(job_record& job, const std::vector<const arrived_instance*>& instances) {
  std::set<std::string> modalities, series;
  for (auto* instance : instances) {
    if (!instance->modality.empty())
      modalities.insert(instance->modality);
    if (!instance->series_uid.empty())
      series.insert(instance->series_uid);
  }
  for (auto* instance : instances) {
    auto values =
        read_attributes(instance->path, {"PatientName", "PatientID", "AccessionNumber", "StudyDate",
                                         "StudyDescription", "Modality", "SeriesInstanceUID"});
    if (!values)
      continue;
    auto value = [&](const char* keyword) {
      auto it = values->find(keyword);
      return it == values->end() ? std::string{} : it->second;
    };
    job.patient_name = value("PatientName");
    job.patient_id = value("PatientID");
    job.accession_number = value("AccessionNumber");
    job.study_date = value("StudyDate");
    job.study_description = value("StudyDescription");
    // Recovered instances carry no header facts: the first instance's at least.
    if (modalities.empty() && !value("Modality").empty())
      modalities.insert(value("Modality"));
    if (series.empty() && !value("SeriesInstanceUID").empty())
      series.insert(value("SeriesInstanceUID"));
    break;
  }
  for (auto& modality : modalities)
    job.modalities += (job.modalities.empty() ? "" : ", ") + modality;
  job.series = static_cast<std::int64_t>(series.size());
}

} // namespace

std::pair<std::int64_t, std::int64_t> intake::link_earlier_inputs(std::int64_t earlier,
                                                                  const fs::path& input) {
  std::int64_t count = 0, bytes = 0;
  std::error_code error;
  for (auto& entry : fs::directory_iterator(layout_.job_dir(earlier) / "INPUT", error)) {
    if (!entry.is_regular_file(error))
      continue;
    auto link = input / entry.path().filename();
    // A late copy of the same instance is linked already and wins.
    if (::link(entry.path().c_str(), link.c_str()) == 0) {
      ++count;
      bytes += static_cast<std::int64_t>(entry.file_size(error));
    }
  }
  return {count, bytes};
}

result<job_record> intake::create_job(const completed_study& study,
                                      const std::vector<const arrived_instance*>& instances,
                                      const std::string& series_uid, job_state final_state,
                                      const std::string& note) {
  job_record job;
  job.stream = study.stream;
  job.state = job_state::creating;
  job.called_ae = study.key.called_ae;
  job.calling_ae = study.key.calling_ae;
  job.peer = study.key.peer;
  job.study_uid = study.key.study_uid;
  job.series_uid = series_uid;
  job.received = study.first_arrival;
  auto id = db_.insert_job(job);
  if (!id)
    return id.error();
  job.id = *id;
  auto dir = layout_.job_dir(job.id);
  auto undo = [&] { undo_creation(job.id); };
  auto input = dir / "INPUT";
  for (auto& folder : {input, dir / "OUTPUT"})
    if (auto problem = create_directories(folder, false)) {
      undo();
      return *problem;
    }
  std::size_t vanished = 0;
  for (auto* instance : instances) {
    auto link = input / (instance->sop_uid + ".dcm");
    if (::link(instance->path.c_str(), link.c_str()) == 0 || errno == EEXIST) {
      ++job.instances;
      job.bytes += static_cast<std::int64_t>(instance->bytes);
    } else if (errno == ENOENT) {
      // Replaced by a later copy that went into another job meanwhile.
      ++vanished;
    } else {
      auto why = errno_text(errno);
      undo();
      return failure{ec::io_error, link.string() + ": cannot link " + instance->path + ": " + why};
    }
  }
  auto late =
      study.late_of != 0 && study.late == "append_and_rerun" && final_state == job_state::queued;
  std::int64_t earlier_instances = 0;
  if (late) {
    auto [count, bytes] = link_earlier_inputs(study.late_of, input);
    earlier_instances = count;
    job.instances += count;
    job.bytes += bytes;
  }
  if (job.instances == 0 && final_state != job_state::skipped) {
    undo();
    return failure{ec::not_found, study.key.describe() + ": none of its " +
                                      std::to_string(instances.size()) +
                                      " instances is still in the incoming folder"};
  }
  if (instances.empty()) {
    std::vector<const arrived_instance*> all;
    for (auto& instance : study.instances)
      all.push_back(&instance);
    take_study_facts(job, all);
  } else {
    take_study_facts(job, instances);
  }
  job.message = note;
  if (late)
    job.message = "job " + std::to_string(study.late_of) + " again: its " +
                  std::to_string(earlier_instances) + " instances with " +
                  std::to_string(job.instances - earlier_instances) +
                  " that arrived after it was made (late: \"append_and_rerun\")" +
                  (note.empty() ? "" : "; " + note);
  if (vanished > 0)
    job.message += (job.message.empty() ? "" : "; ") + std::to_string(vanished) +
                   " instances were replaced by a later copy before the study completed and are "
                   "not in this job";
  // A queued job's message becomes its run's outcome; how it came to be
  // (a late rerun, instances filtered out or replaced) stays.
  if (final_state == job_state::queued)
    job.origin = job.message;
  job.completed = now_ms();
  job.state = final_state;
  // From here on the job exists once committed: start-up recovery finishes it
  // if we stop after its consumption record.
  if (auto problem = write_file_atomically(dir / "info.json", job_info_json(job), false)) {
    undo();
    return *problem;
  }
  return job;
}

status intake::move_to_store(const study_key& key,
                             const std::vector<std::pair<std::string, std::uint64_t>>& files,
                             bool sync_folders) {
  auto incoming_study =
      layout_.incoming_study_dir(key.called_ae, key.calling_ae, key.peer, key.study_uid);
  auto store_study = layout_.store_dir() / key.study_uid;
  if (auto problem = create_directories(store_study, sync_folders))
    return problem;
  for (auto& [name, inode] : files) {
    auto incoming = incoming_study / name;
    // Only the file that arrived moves on; a newer copy with the same SOP
    // Instance UID stays pending for the next job.
    if (inode_of(incoming) != inode || inode == 0)
      continue;
    if (::rename(incoming.c_str(), (store_study / name).c_str()) != 0 && errno != ENOENT)
      return failure{ec::io_error,
                     incoming.string() + ": cannot move into the store: " + errno_text(errno)};
  }
  if (sync_folders) {
    if (auto problem = sync_directory(store_study))
      return problem;
    if (fs::exists(incoming_study))
      if (auto problem = sync_directory(incoming_study))
        return problem;
  }
  remove_if_empty(incoming_study);
  remove_if_empty(incoming_study.parent_path());
  remove_if_empty(incoming_study.parent_path().parent_path());
  return std::nullopt;
}

status intake::finish_recovered(job_record& job) {
  std::vector<std::pair<std::string, std::uint64_t>> files;
  std::error_code error;
  job.instances = 0;
  job.bytes = 0;
  for (auto& entry : fs::directory_iterator(layout_.job_dir(job.id) / "INPUT", error)) {
    files.emplace_back(entry.path().filename().string(), inode_of(entry.path()));
    ++job.instances;
    job.bytes += static_cast<std::int64_t>(entry.file_size(error));
  }
  if (auto problem =
          move_to_store({job.called_ae, job.calling_ae, job.peer, job.study_uid}, files, durable_))
    return problem;
  // An empty INPUT/ with info.json is a study the stream accepted nothing of.
  job.state = files.empty() ? job_state::skipped : job_state::queued;
  if (job.completed == 0)
    job.completed = now_ms();
  return db_.update_job(job);
}

void intake::discard_replaced(const std::vector<journal_ref>& records) {
  if (records.empty())
    return;
  // On failure (a full disk) they stay pending; the job of their study
  // consumes them (replaced_records).
  if (auto consumption = journal_.consume({}, records, false)) {
    auto done = records;
    done.push_back(*consumption);
    journal_.release(done);
  }
}

std::vector<journal_ref> intake::replaced_records(const completed_study& study) const {
  // Records are appended in order, so an older copy has a smaller place; a
  // newer one (arrived after the study completed) belongs to the next group.
  std::vector<journal_ref> replaced;
  auto& key = study.key;
  for (auto& instance : study.instances) {
    if (!instance.record)
      continue;
    auto older = journal_.older_pending_copies(
        {key.called_ae, key.calling_ae, key.peer, key.study_uid, instance.sop_uid},
        instance.record);
    replaced.insert(replaced.end(), older.begin(), older.end());
  }
  return replaced;
}

recovery_report intake::recover() {
  recovery_report report;
  // Jobs whose consumption record made it to the journal are committed.
  std::set<std::int64_t> committed;
  for (auto& consumption : journal_.recovered_consumptions())
    committed.insert(consumption.jobs.begin(), consumption.jobs.end());
  // Interrupted job creations.
  bool all_finished = true;
  if (auto creating = db_.jobs_in_state(job_state::creating)) {
    for (auto& job : *creating) {
      auto dir = layout_.job_dir(job.id);
      // A data folder from a version without a journal committed a job with its info.json.
      bool commit =
          committed.count(job.id) > 0 || (journal_.created() && fs::exists(dir / "info.json"));
      if (commit) {
        if (auto problem = finish_recovered(job)) {
          report.problems.push_back("job " + std::to_string(job.id) + ": " + problem->message);
          all_finished = false;
        } else {
          report.resumed_jobs.push_back(job);
        }
      } else {
        undo_creation(job.id);
        report.undone_jobs.push_back(job.id);
      }
    }
  } else {
    report.problems.push_back(creating.error().message);
    all_finished = false;
  }
  // Every committed job is past `creating` now: its records can go.
  if (all_finished)
    for (auto& consumption : journal_.recovered_consumptions()) {
      auto done = consumption.consumed;
      done.push_back(consumption.ref);
      journal_.release(done);
    }

  // Receptions cut off mid-instance were never acknowledged: drop them, and
  // the empty files the listener had ready.
  std::error_code error;
  for (auto& entry : fs::directory_iterator(layout_.receive_dir(), error)) {
    std::error_code ignored;
    bool partial = entry.file_size(ignored) > 0;
    if (fs::remove(entry.path(), ignored) && partial)
      ++report.removed_partial_files;
  }

  report.pending = pending_instances(report.problems);
  spares(); // the folder is clear now: start making files for the first study
  return report;
}

namespace {

// The instances in one incoming study folder, grouped by the sender that
// their file meta headers record. A file outside its sender's folder (left by
// a version before per-sender folders) is moved there first.
void collect_pending_study(const store_layout& layout, const std::string& called_ae,
                           const fs::path& study_dir, const std::set<fs::path>& in_journal,
                           std::vector<recovered_instance>& pending,
                           std::vector<std::string>& problems) {
  auto study_uid = study_dir.filename().string();
  std::error_code file_error;
  for (auto& file : fs::directory_iterator(study_dir, file_error)) {
    // A file written out from a journal record whose job was not committed:
    // the record is the instance (the file may be partial).
    if (file.path().extension() != ".dcm" || in_journal.count(file.path()))
      continue;
    auto meta = read_file_meta(file.path());
    if (!meta) {
      problems.push_back(meta.error().message);
      continue;
    }
    recovered_instance found;
    auto calling_ae = meta->sending_ae.empty() ? meta->source_ae : meta->sending_ae;
    found.key = study_key{called_ae, calling_ae,
                          host_of_presentation_address(meta->sending_address), study_uid};
    found.instance.sop_uid = file.path().stem().string();
    auto path = layout.incoming_instance(called_ae, calling_ae, found.key.peer, study_uid,
                                         found.instance.sop_uid);
    if (path != file.path()) {
      if (auto problem = create_directories(path.parent_path(), true)) {
        problems.push_back(problem->message);
        continue;
      }
      if (::rename(file.path().c_str(), path.c_str()) != 0) {
        problems.push_back(file.path().string() + ": cannot move into its sender's folder " +
                           path.parent_path().string() + ": " + errno_text(errno));
        continue;
      }
    }
    found.instance.path = path.string();
    std::error_code size_error;
    found.instance.bytes = fs::file_size(path, size_error);
    found.instance.inode = inode_of(path);
    pending.push_back(std::move(found));
  }
}

} // namespace

std::vector<recovered_instance>
intake::pending_instances(std::vector<std::string>& problems) const {
  std::vector<recovered_instance> pending;
  auto journaled = journal_.pending_instances();
  std::set<fs::path> in_journal;
  for (auto& record : journaled) {
    auto& o = record.origin;
    if (valid_uid(o.study_uid) && valid_uid(o.sop_uid))
      in_journal.insert(
          layout_.incoming_instance(o.called_ae, o.calling_ae, o.peer, o.study_uid, o.sop_uid));
  }
  std::error_code error;
  for (auto& ae_dir : fs::directory_iterator(layout_.incoming_dir(), error)) {
    if (!ae_dir.is_directory() || ae_dir.path() == layout_.receive_dir())
      continue;
    auto called_ae = ae_from_folder_name(ae_dir.path().filename().string());
    if (!called_ae) {
      problems.push_back(ae_dir.path().string() +
                         ": not a folder name the node writes; left alone");
      continue;
    }
    // incoming/<called AE>/<calling AE>@<peer>/<study>/; a version before
    // per-sender folders left incoming/<called AE>/<study>/, read the same way
    // (each file's meta header names its sender).
    // Sender folders are read before old-layout files move into them, so
    // that no file is read twice.
    std::vector<fs::path> study_dirs, old_layout_dirs;
    std::error_code sender_error;
    for (auto& child : fs::directory_iterator(ae_dir.path(), sender_error)) {
      if (!child.is_directory())
        continue;
      if (valid_uid(child.path().filename().string())) {
        old_layout_dirs.push_back(child.path());
        continue;
      }
      std::error_code study_error;
      for (auto& study_dir : fs::directory_iterator(child.path(), study_error))
        if (study_dir.is_directory() && valid_uid(study_dir.path().filename().string()))
          study_dirs.push_back(study_dir.path());
    }
    study_dirs.insert(study_dirs.end(), old_layout_dirs.begin(), old_layout_dirs.end());
    for (auto& study_dir : study_dirs)
      collect_pending_study(layout_, *called_ae, study_dir, in_journal, pending, problems);
  }
  for (auto& record : journaled) {
    auto& o = record.origin;
    recovered_instance found;
    found.key = study_key{o.called_ae, o.calling_ae, o.peer, o.study_uid};
    found.instance.sop_uid = o.sop_uid;
    found.instance.bytes = record.bytes;
    found.instance.record = record.ref;
    pending.push_back(std::move(found));
  }
  return pending;
}

} // namespace dcmstreams
