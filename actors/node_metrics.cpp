#include "actors/node_metrics.hpp"

#include "build_info.hpp"

namespace dcmstreams {

node_metrics::node_metrics(metrics::registry& reg)
    : registry(reg), associations_active(reg.add_gauge("dcmstreams_associations_active",
                                                       "DICOM associations open right now.")),
      associations_total(reg.add_counter(
          "dcmstreams_associations_total",
          "DICOM associations by result: accepted, or why they were rejected.", {"result"})),
      tls_refused(reg.add_counter(
          "dcmstreams_dicom_tls_refused_total",
          "Connections to the DICOM TLS listener refused before their association request: "
          "caller_not_allowed (certificate untrusted, missing or not allowed), unsupported "
          "(plain DICOM), network_error (handshake failed).",
          {"reason"})),
      stow_requests(reg.add_counter(
          "dcmstreams_stow_requests_total",
          "STOW-RS requests (POST /dicomweb/{AE}/studies) by the status answered: 200 all "
          "stored, 202 some, 409 none, 507 the disk too full, 4xx a wrong request.",
          {"status"})),
      instances_received(reg.add_counter(
          "dcmstreams_instances_received_total",
          "Instances stored durably (by C-STORE or STOW-RS), by called AE title.", {"called_ae"})),
      bytes_received(reg.add_counter("dcmstreams_bytes_received_total",
                                     "Bytes of instances stored, by called AE title.",
                                     {"called_ae"})),
      instances_replaced(reg.add_counter(
          "dcmstreams_instances_replaced_total",
          "Instances sent again with the same SOP Instance UID, replacing the earlier copy.",
          {"called_ae"})),
      store_failures(reg.add_counter("dcmstreams_store_failures_total",
                                     "C-STORE requests answered with a failure status, by reason.",
                                     {"reason"})),
      studies_pending(reg.add_gauge("dcmstreams_studies_pending",
                                    "Studies still arriving (waiting for their quiet period).")),
      intake_backlog(
          reg.add_gauge("dcmstreams_intake_backlog_instances",
                        "Instances of completed studies waiting for their jobs to be made; above "
                        "completion.max_backlog, C-STORE and STOW-RS answers wait for it.")),
      ingest_wait(
          reg.add_counter("dcmstreams_ingest_wait_seconds_total",
                          "Seconds C-STORE and STOW-RS answers waited for job creation to catch up "
                          "(completion.max_backlog).")),
      studies_completed(reg.add_counter("dcmstreams_studies_completed_total",
                                        "Studies complete and turned into jobs, by stream.",
                                        {"stream"})),
      completion_delay(
          reg.add_histogram("dcmstreams_study_completion_delay_seconds",
                            "Time from a study's last instance to its job being queued.",
                            metrics::exponential_buckets(0.25, 2, 12), {"stream"})),
      jobs_created(reg.add_counter("dcmstreams_jobs_created_total",
                                   "Jobs created and queued, by stream.", {"stream"})),
      queue_depth(reg.add_gauge("dcmstreams_stream_queue_depth",
                                "Jobs waiting in a stream's queue.", {"stream"})),
      jobs_running(
          reg.add_gauge("dcmstreams_stream_running", "Jobs of a stream running now.", {"stream"})),
      jobs_total(reg.add_counter("dcmstreams_jobs_total",
                                 "Jobs finished, by stream and result (success, failed, "
                                 "cancelled, skipped).",
                                 {"stream", "result"})),
      jobs_requeued(reg.add_counter("dcmstreams_jobs_requeued_total",
                                    "Jobs queued again because the worker running them was "
                                    "lost, by stream.",
                                    {"stream"})),
      notifications(reg.add_counter("dcmstreams_notifications_total",
                                    "Notifications of ended jobs (a stream's notify), by stream "
                                    "and result (delivered, failed after every attempt).",
                                    {"stream", "result"})),
      job_duration(reg.add_histogram("dcmstreams_job_duration_seconds",
                                     "Run time of jobs, by stream.",
                                     metrics::exponential_buckets(0.05, 2, 16), {"stream"})),
      kernel_duration(reg.add_histogram("dcmstreams_kernel_duration_seconds",
                                        "Run time of one built-in kernel step over a job's "
                                        "series, by kernel.",
                                        metrics::exponential_buckets(0.001, 2, 20), {"kernel"})),
      sends_total(reg.add_counter("dcmstreams_sends_total",
                                  "Send tasks finished, by destination and result (done, failed).",
                                  {"destination", "result"})),
      send_retries(reg.add_counter("dcmstreams_send_retries_total",
                                   "Send attempts that left files unsent and were retried later.",
                                   {"destination"})),
      send_queue_depth(reg.add_gauge("dcmstreams_send_queue_depth",
                                     "Send tasks waiting for or being sent, by destination.",
                                     {"destination"})),
      send_attempt_duration(reg.add_histogram(
          "dcmstreams_send_attempt_duration_seconds",
          "Time one attempt of a send took to send its files (whatever came of it), by "
          "destination.",
          metrics::exponential_buckets(0.01, 2, 18), {"destination"})),
      send_duration(reg.add_histogram(
          "dcmstreams_send_duration_seconds",
          "Time from a send's creation to its end (done or failed), retries included, by "
          "destination.",
          metrics::exponential_buckets(0.01, 2, 20), {"destination"})),
      actor_restarts(reg.add_counter("dcmstreams_actor_restarts_total",
                                     "Long-lived actors restarted by the supervisor after they "
                                     "died, by actor.",
                                     {"actor"})),
      watchdog_restarts(reg.add_counter("dcmstreams_listener_restarts_total",
                                        "DICOM listener restarts by the watchdog after it stopped "
                                        "answering C-ECHO.")),
      scrubbed_jobs(reg.add_counter("dcmstreams_scrubbed_jobs_total",
                                    "Finished jobs deleted by the scrubber, by reason (disk, age).",
                                    {"reason"})),
      scrubbed_bytes(reg.add_counter("dcmstreams_scrubbed_bytes_total",
                                     "Bytes freed by the scrubber, by reason (disk, age).",
                                     {"reason"})),
      routing_reloads(reg.add_counter("dcmstreams_routing_reloads_total",
                                      "Loads of routing.json, by result (ok, invalid).",
                                      {"result"})),
      streams_loaded(
          reg.add_gauge("dcmstreams_streams_loaded", "Streams loaded from the streams folder.")),
      stream_reloads(reg.add_counter("dcmstreams_stream_reloads_total",
                                     "Reloads of the streams folder, by result.", {"result"})),
      disk_free(reg.add_gauge("dcmstreams_disk_free_bytes",
                              "Free bytes on the file system of the data folder.")),
      journal_records(reg.add_counter("dcmstreams_journal_records_total",
                                      "Records appended to the ingest journal (instances and "
                                      "consumption records).")),
      journal_flushes(reg.add_counter("dcmstreams_journal_flushes_total",
                                      "Flushes (fdatasync) of the ingest journal; records per "
                                      "flush is the group commit's batch.")),
      journal_segments(reg.add_gauge("dcmstreams_journal_segments",
                                     "Ingest journal segments holding records, and free ones.",
                                     {"state"})),
      journal_live(reg.add_gauge("dcmstreams_journal_live_records",
                                 "Journal records not yet released (pending instances, and "
                                 "those of jobs being created).")),
      build_info(
          reg.add_gauge("dcmstreams_build_info", "Version of dcmstreams; always 1.", {"version"})),
      worker_up(reg.add_gauge("dcmstreams_worker_up",
                              "1 while a worker answers the head's heartbeats, 0 once it is lost.",
                              {"worker"})),
      worker_slots(reg.add_gauge("dcmstreams_worker_slots",
                                 "Execution slots a worker enlisted with.", {"worker"})),
      worker_running(reg.add_gauge("dcmstreams_worker_jobs_running",
                                   "Jobs running on a worker, as its last heartbeat said.",
                                   {"worker"})),
      worker_joins(reg.add_counter("dcmstreams_worker_joins_total",
                                   "Times a worker joined the head (again after a loss).",
                                   {"worker"})),
      worker_losses(reg.add_counter("dcmstreams_worker_losses_total",
                                    "Times a worker was lost, by reason (disconnected: its "
                                    "connection closed; silent: no heartbeat answer).",
                                    {"worker", "reason"})) {
  build_info.with({::dcmstreams::build_info::version}).set(1);
}

} // namespace dcmstreams
