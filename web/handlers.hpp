#pragma once
// The API's handlers, by resource; each file web/<resource>_api.cpp holds
// its resource's. The route table (web/routes.cpp) says which method and
// path reach each one and who may call it.

#include "web/routes.hpp"

#include <cstddef>
#include <memory>
#include <string>

namespace dcmstreams::web {

class mapped_file;

// Health, status and metrics (status_api.cpp).
void get_health(api_context& api, const route_call& call);
void get_ready(api_context& api, const route_call& call);
void get_status(api_context& api, const route_call& call);
void get_throughput(api_context& api, const route_call& call);
void get_metrics(api_context& api, const route_call& call);
void get_events(api_context& api, const route_call& call);

// What a pseudonym stands for (pseudonyms_api.cpp).
void get_pseudonym(api_context& api, const route_call& call);

// The cluster's workers (cluster_api.cpp).
void list_workers(api_context& api, const route_call& call);

// Logging in and the UI's files (session_api.cpp).
void get_ui_file(api_context& api, const route_call& call);
void log_in(api_context& api, const route_call& call);
void log_out(api_context& api, const route_call& call);
void get_whoami(api_context& api, const route_call& call);

// Streams (streams_api.cpp).
void get_streams(api_context& api, const route_call& call);

// Jobs (jobs_api.cpp).
void list_jobs(api_context& api, const route_call& call);
void get_job(api_context& api, const route_call& call);
void delete_job(api_context& api, const route_call& call);
void get_job_log(api_context& api, const route_call& call);
void get_job_output_zip(api_context& api, const route_call& call);
void get_job_input_zip(api_context& api, const route_call& call);
void retry_job(api_context& api, const route_call& call);
void cancel_job(api_context& api, const route_call& call);
void preview_job_routing(api_context& api, const route_call& call);
void send_job_to(api_context& api, const route_call& call);
/// A ZIP of one folder of job `id` (OUTPUT or INPUT), named `name`.zip.
void send_job_zip(api_context& api, const route_call& call, std::int64_t id,
                  const std::string& folder, const std::string& name);

// A job's image series and their pictures (series_api.cpp).
void list_job_series(api_context& api, const route_call& call);
void get_series_preview(api_context& api, const route_call& call);

// Pending studies and uploads (studies_api.cpp).
void list_studies(api_context& api, const route_call& call);
void complete_study(api_context& api, const route_call& call);
void upload_zip(api_context& api, const route_call& call);
/// Unpacks the ZIP at [offset, offset + length) of `body` for the stream with
/// `called_ae`, as sent by `calling_ae`, on the file pool; answers 202.
void accept_upload(api_context& api, const route_call& call, const std::string& called_ae,
                   const std::string& calling_ae, std::size_t offset, std::size_t length,
                   std::shared_ptr<mapped_file> body);

// DICOMweb: STOW-RS (dicomweb_api.cpp).
void store_instances(api_context& api, const route_call& call);

// Sends (sends_api.cpp).
void list_sends(api_context& api, const route_call& call);
void get_send(api_context& api, const route_call& call);
void retry_send(api_context& api, const route_call& call);

// Routing rules (routing_api.cpp).
void get_routing(api_context& api, const route_call& call);
void put_routing(api_context& api, const route_call& call);

// The old appliance's endpoints (legacy_api.cpp; docs/http.md maps each field).
void get_installed_buckets(api_context& api, const route_call& call);
void get_legacy_status(api_context& api, const route_call& call);
void get_scratch(api_context& api, const route_call& call);
void get_output_zip_legacy(api_context& api, const route_call& call);
void delete_study_legacy(api_context& api, const route_call& call);
void process_zip_legacy(api_context& api, const route_call& call);
void get_scratch_log(api_context& api, const route_call& call);

// Faults the supervision tests inject into a running node (test_hooks_api.cpp).
void wedge_listener(api_context& api, const route_call& call);
void kill_actor(api_context& api, const route_call& call);
void kill_sender(api_context& api, const route_call& call);
void kill_mailbox(api_context& api, const route_call& call);
void stall_job_store(api_context& api, const route_call& call);

} // namespace dcmstreams::web
