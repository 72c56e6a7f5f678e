#include "pipeline/intake.hpp"

#include "pipeline/dicom_file.hpp"
#include "pipeline/files.hpp"
#include "pipeline/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <system_error>

namespace dcmstreams {

namespace fs = std::filesystem;

std::string study_key::describe() const {
  return "study " + study_uid + " from " + calling_ae + "@" + peer + " to " + called_ae;
}

namespace {

bool same_file(const fs::path& a, const fs::path& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Removes a folder if it is empty; anything else in it is left alone.
void remove_if_empty(const fs::path& dir) {
  ::rmdir(dir.c_str());
}

} // namespace

result<job_record> intake::create_job(const completed_study& study) {
  job_record job;
  job.stream = study.stream;
  job.state = job_state::creating;
  job.called_ae = study.key.called_ae;
  job.calling_ae = study.key.calling_ae;
  job.peer = study.key.peer;
  job.study_uid = study.key.study_uid;
  job.received = study.first_arrival;
  auto id = db_.insert_job(job);
  if (!id)
    return id.error();
  job.id = *id;
  auto dir = layout_.job_dir(job.id);
  if (auto problem = fill_job_folder(job, study)) {
    // Before info.json exists the instances are still pending in incoming/:
    // undo, so that the study can complete again. After it, start-up
    // recovery finishes the job.
    if (!fs::exists(dir / "info.json")) {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
      db_.delete_job(job.id);
    }
    return *problem;
  }
  return job;
}

status intake::fill_job_folder(job_record& job, const completed_study& study) {
  auto dir = layout_.job_dir(job.id);
  auto input = dir / "INPUT";
  if (auto problem = create_directories(input, durable_))
    return problem;
  if (auto problem = create_directories(dir / "OUTPUT", durable_))
    return problem;
  std::size_t vanished = 0;
  for (auto& instance : study.instances) {
    auto link = input / (instance.sop_uid + ".dcm");
    if (::link(instance.path.c_str(), link.c_str()) == 0 || errno == EEXIST) {
      ++job.instances;
      job.bytes += static_cast<std::int64_t>(instance.bytes);
    } else if (errno == ENOENT) {
      // Replaced by a later copy that went into another job meanwhile.
      ++vanished;
    } else {
      return failure{ec::io_error,
                     link.string() + ": cannot link " + instance.path + ": " + errno_text(errno)};
    }
  }
  if (job.instances == 0)
    return failure{ec::not_found, study.key.describe() + ": none of its " +
                                      std::to_string(study.instances.size()) +
                                      " instances is still in the incoming folder"};
  if (vanished > 0)
    job.message = std::to_string(vanished) + " instances were replaced by a later copy before "
                                             "the study completed and are not in this job";
  if (durable_)
    if (auto problem = sync_directory(input))
      return problem;
  job.completed = now_ms();
  if (auto problem = write_file_atomically(dir / "info.json", job_info_json(job), durable_))
    return problem;
  return move_to_store(job);
}

status intake::move_to_store(job_record& job) {
  auto input = layout_.job_dir(job.id) / "INPUT";
  auto incoming_study = layout_.incoming_study_dir(job.called_ae, job.study_uid);
  auto store_study = layout_.store_dir() / job.study_uid;
  if (auto problem = create_directories(store_study, durable_))
    return problem;
  std::error_code error;
  for (auto& entry : fs::directory_iterator(input, error)) {
    auto name = entry.path().filename();
    auto incoming = incoming_study / name;
    // Only the file that was linked moves on; a newer copy with the same SOP
    // Instance UID stays pending for the next job.
    if (same_file(incoming, entry.path()) &&
        ::rename(incoming.c_str(), (store_study / name).c_str()) != 0)
      return failure{ec::io_error,
                     incoming.string() + ": cannot move into the store: " + errno_text(errno)};
  }
  if (error)
    return failure{ec::io_error, input.string() + ": cannot list: " + error.message()};
  if (durable_) {
    if (auto problem = sync_directory(store_study))
      return problem;
    if (fs::exists(incoming_study))
      if (auto problem = sync_directory(incoming_study))
        return problem;
  }
  remove_if_empty(incoming_study);
  remove_if_empty(incoming_study.parent_path());
  job.state = job_state::queued;
  return db_.update_job(job);
}

recovery_report intake::recover() {
  recovery_report report;
  // Interrupted job creations.
  if (auto creating = db_.jobs_in_state(job_state::creating)) {
    for (auto& job : *creating) {
      auto dir = layout_.job_dir(job.id);
      if (fs::exists(dir / "info.json")) {
        if (auto problem = move_to_store(job))
          report.problems.push_back("job " + std::to_string(job.id) + ": " + problem->message);
        else
          report.resumed_jobs.push_back(job);
      } else {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
        db_.delete_job(job.id);
        report.undone_jobs.push_back(job.id);
      }
    }
  } else {
    report.problems.push_back(creating.error().message);
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

  // Instances of studies that had not completed.
  for (auto& ae_dir : fs::directory_iterator(layout_.incoming_dir(), error)) {
    if (!ae_dir.is_directory() || ae_dir.path() == layout_.receive_dir())
      continue;
    auto called_ae = ae_from_folder_name(ae_dir.path().filename().string());
    if (!called_ae) {
      report.problems.push_back(ae_dir.path().string() +
                                ": not a folder name the node writes; left alone");
      continue;
    }
    std::error_code study_error;
    for (auto& study_dir : fs::directory_iterator(ae_dir.path(), study_error)) {
      auto study_uid = study_dir.path().filename().string();
      if (!study_dir.is_directory() || !valid_uid(study_uid))
        continue;
      std::error_code file_error;
      for (auto& file : fs::directory_iterator(study_dir.path(), file_error)) {
        if (file.path().extension() != ".dcm")
          continue;
        auto meta = read_file_meta(file.path());
        if (!meta) {
          report.problems.push_back(meta.error().message);
          continue;
        }
        recovered_instance found;
        auto calling_ae = meta->sending_ae.empty() ? meta->source_ae : meta->sending_ae;
        found.key = study_key{*called_ae, calling_ae,
                              host_of_presentation_address(meta->sending_address), study_uid};
        found.instance.sop_uid = file.path().stem().string();
        found.instance.path = file.path().string();
        std::error_code size_error;
        found.instance.bytes = fs::file_size(file.path(), size_error);
        report.pending.push_back(std::move(found));
      }
    }
  }
  return report;
}

} // namespace dcmstreams
