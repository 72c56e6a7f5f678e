#pragma once
// The metric families of the node (DESIGN §8), declared once with help text.
// Actors and the listener bridge keep references to the children they bump.

#include "metrics/registry.hpp"

namespace dcmstreams {

struct node_metrics {
  explicit node_metrics(metrics::registry& registry);

  metrics::registry& registry;
  metrics::family<metrics::gauge>& associations_active;
  metrics::family<metrics::counter>& associations_total; // {result}
  metrics::family<metrics::counter>& tls_refused;        // {reason}
  metrics::family<metrics::counter>& stow_requests;      // {status}
  metrics::family<metrics::counter>& instances_received; // {called_ae}
  metrics::family<metrics::counter>& bytes_received;     // {called_ae}
  metrics::family<metrics::counter>& instances_replaced; // {called_ae}
  metrics::family<metrics::counter>& store_failures;     // {reason}
  metrics::family<metrics::gauge>& studies_pending;
  metrics::family<metrics::gauge>& intake_backlog;            // instances waiting for their jobs
  metrics::family<metrics::counter>& ingest_wait;             // seconds responses waited for intake
  metrics::family<metrics::counter>& studies_completed;       // {stream}
  metrics::family<metrics::histogram>& completion_delay;      // {stream}
  metrics::family<metrics::counter>& jobs_created;            // {stream}
  metrics::family<metrics::gauge>& queue_depth;               // {stream}
  metrics::family<metrics::gauge>& jobs_running;              // {stream}
  metrics::family<metrics::counter>& jobs_total;              // {stream,result}
  metrics::family<metrics::counter>& jobs_requeued;           // {stream}
  metrics::family<metrics::counter>& notifications;           // {stream,result}
  metrics::family<metrics::histogram>& job_duration;          // {stream}
  metrics::family<metrics::histogram>& kernel_duration;       // {kernel}
  metrics::family<metrics::counter>& sends_total;             // {destination,result}
  metrics::family<metrics::counter>& send_retries;            // {destination}
  metrics::family<metrics::gauge>& send_queue_depth;          // {destination}
  metrics::family<metrics::histogram>& send_attempt_duration; // {destination}
  metrics::family<metrics::histogram>& send_duration;         // {destination}
  metrics::family<metrics::counter>& actor_restarts;          // {actor}
  metrics::family<metrics::counter>& watchdog_restarts;
  metrics::family<metrics::counter>& scrubbed_jobs;   // {reason}
  metrics::family<metrics::counter>& scrubbed_bytes;  // {reason}
  metrics::family<metrics::counter>& routing_reloads; // {result}
  metrics::family<metrics::gauge>& streams_loaded;
  metrics::family<metrics::counter>& stream_reloads; // {result}
  metrics::family<metrics::gauge>& disk_free;
  metrics::family<metrics::counter>& journal_records; // appended to the ingest journal
  metrics::family<metrics::counter>& journal_flushes; // fdatasync calls of the journal
  metrics::family<metrics::gauge>& journal_segments;  // {state}: in_use, free
  metrics::family<metrics::gauge>& journal_live;      // records not yet released
  metrics::family<metrics::gauge>& build_info;        // {version}
  metrics::family<metrics::gauge>& worker_up;         // {worker}: 1 joined, 0 lost
  metrics::family<metrics::gauge>& worker_slots;      // {worker}
  metrics::family<metrics::gauge>& worker_running;    // {worker}
  metrics::family<metrics::counter>& worker_joins;    // {worker}
  metrics::family<metrics::counter>& worker_losses;   // {worker,reason}
};

} // namespace dcmstreams
