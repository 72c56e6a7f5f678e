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

/// What the registry watcher starts with.
struct registry_watcher_settings {
  std::filesystem::path streams_dir;
  std::shared_ptr<streams::shared_registry> shared; // where it publishes
  caf::timespan interval{};                         // how often it looks
  node_metrics* metrics = nullptr;
  readiness_board* readiness = nullptr; // gets the streams' problems; may be null
};

struct registry_watcher_state {
  registry_watcher_settings settings;
  std::string fingerprint;
  static inline const char* name = "registry-watcher";
};

registry_actor::behavior_type
registry_watcher(registry_actor::stateful_pointer<registry_watcher_state> self,
                 registry_watcher_settings settings);

/// Loads the streams folder, logs what loaded and what was skipped (compared
/// with the published registry), and publishes the result. A stream whose
/// info.json became unusable keeps its last good definition until the file
/// is fixed. Every problem is also a readiness problem ("streams").
void load_and_publish(const std::filesystem::path& streams_dir, streams::shared_registry& shared,
                      node_metrics* metrics, readiness_board* readiness);

} // namespace dcmstreams
