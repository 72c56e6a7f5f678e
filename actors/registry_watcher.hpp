#pragma once
// Watches the streams folder: every interval it compares a cheap fingerprint
// of the folder and, when it changed, reloads and publishes the registry. The
// listener reads the published registry, so it never restarts for a reload.

#include "actors/actors.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/foundation/readiness.hpp"
#include "streams/registry.hpp"

#include <filesystem>
#include <memory>

namespace dcmstreams {

struct registry_watcher_state {
  std::filesystem::path streams_dir;
  std::string fingerprint;
  std::shared_ptr<streams::shared_registry> shared;
  caf::timespan interval{};
  node_metrics* metrics = nullptr;
  readiness_board* readiness = nullptr;
  static inline const char* name = "registry-watcher";
};

registry_actor::behavior_type
registry_watcher(registry_actor::stateful_pointer<registry_watcher_state> self,
                 std::filesystem::path streams_dir,
                 std::shared_ptr<streams::shared_registry> shared, caf::timespan interval,
                 node_metrics* metrics, readiness_board* readiness);

/// Loads the streams folder, logs what loaded and what was skipped (compared
/// with the published registry), and publishes the result. A stream whose
/// info.json became unusable keeps its last good definition until the file
/// is fixed. Every problem is also a readiness problem ("streams").
void load_and_publish(const std::filesystem::path& streams_dir, streams::shared_registry& shared,
                      node_metrics* metrics, readiness_board* readiness);

} // namespace dcmstreams
