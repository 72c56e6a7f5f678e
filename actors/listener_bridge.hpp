#pragma once
// The ingest_sink the DICOM listener reports to: checks called AE titles
// against the published registry, counts, and posts each stored instance to
// the assembler. Runs on association threads; blocks only to let job creation
// catch up (intake_backlog), before the C-STORE is answered.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/jobs/ingest.hpp"
#include "pipeline/jobs/intake_backlog.hpp"
#include "streams/registry.hpp"

#include <memory>

namespace dcmstreams {

class listener_bridge : public ingest_sink {
public:
  /// `own_ae_title` (the node's) takes C-ECHO only, as the watchdog and
  /// anyone checking the node need.
  listener_bridge(std::shared_ptr<streams::shared_registry> registry, assembler_actor assembler,
                  node_metrics& metrics, std::string own_ae_title = {},
                  std::shared_ptr<intake_backlog> backlog = nullptr)
      : registry_(std::move(registry)), assembler_(std::move(assembler)), metrics_(metrics),
        own_ae_title_(std::move(own_ae_title)), backlog_(std::move(backlog)) {}

  association_verdict admit(const association_request& request) override;
  void association_rejected(const association_request& request, ec reason) override;
  void tls_refused(const std::string& peer, ec reason) override;
  void association_started(const association_request& request) override;
  void association_ended(const association_request& request, association_end end) override;
  void instance_stored(const stored_instance& instance) override;
  void store_failed(const association_request& request, ec reason,
                    const std::string& message) override;

private:
  std::shared_ptr<streams::shared_registry> registry_;
  assembler_actor assembler_;
  node_metrics& metrics_;
  std::string own_ae_title_;
  std::shared_ptr<intake_backlog> backlog_; // may be null: never waits
};

/// Waits (at most ingest_wait_for_backlog) while job creation is behind by
/// more than completion.max_backlog instances; counts the wait and logs
/// when a stretch of waiting begins and ends. For every way instances come in.
void wait_for_job_creation(intake_backlog* backlog, node_metrics* metrics);

} // namespace dcmstreams
