#include "actors/listener_bridge.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

association_verdict listener_bridge::admit(const association_request& request) {
  auto snapshot = registry_->get();
  auto* stream = snapshot->find_by_ae(request.called_ae);
  if (stream && stream->enabled)
    return association_verdict::accept;
  return !own_ae_title_.empty() && request.called_ae == own_ae_title_
             ? association_verdict::verification_only
             : association_verdict::unknown_called_ae;
}

void listener_bridge::association_rejected(const association_request&, ec reason) {
  metrics_.associations_total.with({std::string("rejected_") + to_string(reason)}).increment();
}

void listener_bridge::tls_refused(const std::string&, ec reason) {
  metrics_.tls_refused.with({to_string(reason)}).increment();
}

void listener_bridge::association_started(const association_request&) {
  metrics_.associations_total.with({"accepted"}).increment();
  metrics_.associations_active.with({}).increment();
}

void listener_bridge::association_ended(const association_request& request, association_end end) {
  metrics_.associations_active.with({}).decrement();
  // Only a release says "that was all": an abort may be cut off mid-study.
  if (end == association_end::released)
    caf::anon_send(assembler_, released_atom::value, request.called_ae, request.calling_ae,
                   request.peer, request.peer_port);
}

void listener_bridge::instance_stored(const stored_instance& instance) {
  metrics_.instances_received.with({instance.called_ae}).increment();
  metrics_.bytes_received.with({instance.called_ae}).increment(static_cast<double>(instance.bytes));
  caf::anon_send(
      assembler_, arrived_atom::value,
      study_key{instance.called_ae, instance.calling_ae, instance.peer, instance.study_uid},
      arrived_instance{instance.sop_uid, instance.path, instance.bytes, instance.inode,
                       instance.record, instance.series_uid, instance.modality,
                       instance.series_description},
      instance.peer_port);
  wait_for_job_creation(backlog_.get(), &metrics_);
}

void wait_for_job_creation(intake_backlog* backlog, node_metrics* metrics) {
  if (!backlog)
    return;
  auto outcome = backlog->wait_for_room();
  if (outcome.began_waiting)
    log::warning("ingest", "job creation is behind: " + std::to_string(outcome.backlog) +
                               " instances of completed studies wait for their jobs (more than "
                               "completion.max_backlog, " +
                               std::to_string(backlog->limit()) +
                               "); answers to senders wait up to " +
                               std::to_string(ingest_wait_for_backlog.count()) +
                               " ms each until it catches up");
  if (outcome.caught_up)
    log::info("ingest", "job creation caught up (" + std::to_string(outcome.backlog) +
                            " instances waiting); answers no longer wait");
  if (metrics && outcome.waited.count() > 0)
    metrics->ingest_wait.with({}).increment(outcome.waited.count());
}

void listener_bridge::store_failed(const association_request&, ec reason, const std::string&) {
  metrics_.store_failures.with({to_string(reason)}).increment();
}

} // namespace dcmstreams
