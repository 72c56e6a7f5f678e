#pragma once
// The notifier (actors.hpp): a stream's "notify" targets learn that a job
// ended by an HTTP POST of the job (docs/streams.md). A target that does not
// answer 2xx is tried again after 1 s and 2 s; what happened is written into
// the job's processing.log and counted, and nothing else waits for it.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/jobs/store.hpp"
#include "pipeline/routing/webhook_client.hpp"

namespace dcmstreams {

struct notifier_settings {
  webhook_client* client = nullptr; // outlives the actor
  std::filesystem::path data_dir;
  std::string ae_title; // the node's, in the body
  node_metrics* metrics = nullptr;
  double timeout_s = 5;       // per attempt
  std::uint32_t attempts = 3; // in all
};

struct notifier_state {
  notifier_settings settings;
  static inline const char* name = "notifier";
};

notifier_actor::behavior_type notifier(notifier_actor::stateful_pointer<notifier_state> self,
                                       notifier_settings settings);

/// The body of a notification: {"event": "job.<state>", "node": ..., "job": {...}}.
std::string notification_body(const job_record& job, const std::string& ae_title);

} // namespace dcmstreams
