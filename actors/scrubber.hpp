#pragma once
// The scrubber (actors.hpp): deletes finished jobs when the data disk fills
// and when they pass their retention. Its own database connection; the job
// store's rules for deleting a job (pipeline/jobs/scrub.hpp).

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/store.hpp"

#include <functional>
#include <memory>

namespace dcmstreams {

/// What the scrubber starts with.
struct scrubber_settings {
  std::filesystem::path data_dir;
  storage_config storage; // scrub_high_pct, scrub_low_pct, keep_days...
  node_metrics* metrics = nullptr;
  event_hub* events = nullptr;
};

struct scrubber_state {
  scrubber_settings settings;
  std::unique_ptr<database> db;
  std::unique_ptr<store_layout> layout;
  /// Percent of the data disk in use (tests replace it).
  std::function<double()> used_pct;
  static inline const char* name = "scrubber";
};

scrubber_actor::behavior_type scrubber(scrubber_actor::stateful_pointer<scrubber_state> self,
                                       scrubber_settings settings);

} // namespace dcmstreams
