#pragma once
// The JSON views of the job model, in one place: a job's info.json file, and
// a job, a send and a send's file as the HTTP API (DESIGN §7) and the event
// feed show them. Changing a key here changes it everywhere it is shown.

#include "pipeline/foundation/json.hpp"
#include "pipeline/jobs/job.hpp"
#include "pipeline/jobs/send.hpp"

#include <string>

namespace dcmstreams {

/// The job's info.json text: the old appliance's keys (CallerIP,
/// AETitleCalled, AETitleCaller, received) first, then ours; indented.
std::string job_info_json(const job_record& job);

/// id, stream, state, called_ae, calling_ae, peer, study_uid, series_uid,
/// instances, bytes, received, completed, started, finished, message.
/// Without `with_patient`, the patient's name and ID and the accession
/// number are masked ("patient_masked": true).
json::value job_view(const job_record& job, bool with_patient = true);

/// id, job_id, rule, destination, host, port, called_ae, calling_ae, state,
/// attempts, created, next_attempt, finished, message, files_total,
/// files_sent, files_failed.
json::value send_view(const send_task& task);

/// path, state, status (DIMSE), message.
json::value send_file_view(const send_file& file);

} // namespace dcmstreams
