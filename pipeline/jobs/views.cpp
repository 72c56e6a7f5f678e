#include "pipeline/jobs/views.hpp"

namespace dcmstreams {

std::string job_info_json(const job_record& job) {
  json::value info = {
      {"CallerIP", job.peer},
      {"AETitleCalled", job.called_ae},
      {"AETitleCaller", job.calling_ae},
      {"received", iso8601(job.received)},
      {"id", job.id},
      {"stream", job.stream},
      {"StudyInstanceUID", job.study_uid},
  };
  if (!job.series_uid.empty())
    info["SeriesInstanceUID"] = job.series_uid;
  info["instances"] = job.instances;
  info["bytes"] = job.bytes;
  info["completed"] = iso8601(job.completed);
  info["state"] = to_string(job.state);
  if (job.started)
    info["started"] = iso8601(job.started);
  if (job.finished)
    info["finished"] = iso8601(job.finished);
  if (!job.message.empty())
    info["message"] = job.message;
  if (!job.origin.empty())
    info["origin"] = job.origin;
  return json::dump(info, true) + "\n";
}

json::value job_view(const job_record& job, bool with_patient) {
  json::value view = {
      {"id", job.id},
      {"stream", job.stream},
      {"state", to_string(job.state)},
      {"called_ae", job.called_ae},
      {"calling_ae", job.calling_ae},
      {"peer", job.peer},
      {"study_uid", job.study_uid},
      {"series_uid", job.series_uid},
      {"instances", job.instances},
      {"bytes", job.bytes},
      {"received", iso8601(job.received)},
      {"completed", iso8601(job.completed)},
      {"started", iso8601(job.started)},
      {"finished", iso8601(job.finished)},
      {"message", job.message},
      {"worker", job.worker},
      {"lost_runs", job.lost_runs},
      {"patient_name", job.patient_name},
      {"patient_id", job.patient_id},
      {"accession_number", job.accession_number},
      {"study_date", job.study_date},
      {"study_description", job.study_description},
      {"modalities", job.modalities},
      {"series", job.series},
      {"origin", job.origin},
  };
  if (!with_patient) {
    for (auto* key : {"patient_name", "patient_id", "accession_number"})
      if (!view[key].get<std::string>().empty())
        view[key] = "•••";
    view["patient_masked"] = true;
  }
  return view;
}

json::value send_view(const send_task& t) {
  return {
      {"id", t.id},
      {"job_id", t.job_id},
      {"rule", t.rule},
      {"destination", t.destination},
      {"host", t.host},
      {"port", t.port},
      {"called_ae", t.called_ae},
      {"calling_ae", t.calling_ae},
      {"deidentify", t.deidentify},
      {"state", to_string(t.state)},
      {"attempts", t.attempts},
      {"created", iso8601(t.created)},
      {"next_attempt", iso8601(t.next_attempt)},
      {"finished", iso8601(t.finished)},
      {"message", t.message},
      {"files_total", t.files_total},
      {"files_sent", t.files_sent},
      {"files_failed", t.files_failed},
  };
}

json::value send_file_view(const send_file& file) {
  return {
      {"path", file.path},
      {"state", to_string(file.state)},
      {"status", file.status},
      {"message", file.message},
  };
}

} // namespace dcmstreams
