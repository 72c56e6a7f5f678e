#pragma once
// The assembler: groups instances into studies and completes them. Started
// with `restarted` (by its supervisor), it rebuilds the pending studies from
// the incoming folder.

#include "actors/actors.hpp"
#include "actors/events.hpp"
#include "actors/node_metrics.hpp"
#include "pipeline/foundation/config.hpp"
#include "pipeline/jobs/intake_backlog.hpp"
#include "streams/registry.hpp"

#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>

namespace dcmstreams {

/// A stream's complete_when with its patterns compiled.
struct required_set {
  streams::completion_rule rule;
  std::optional<std::regex> modality;
  std::optional<std::regex> series_description;

  explicit required_set(const streams::completion_rule& from);
  /// Whether an instance belongs to a series the rule counts.
  bool matches(const arrived_instance& instance) const;
};

struct pending_group {
  std::string stream;
  std::map<std::string, arrived_instance> instances; // by SOP Instance UID
  epoch_ms first_arrival_wall = 0;
  epoch_ms last_arrival_wall = 0;
  caf::actor_clock::time_point first_arrival;
  caf::actor_clock::time_point last_arrival;
  caf::timespan quiet_period{};
  bool timer_pending = false;
  /// Its stream has complete_on "release"; the peer ports of the open
  /// associations that stored instances of it (complete when none is left).
  bool complete_on_release = false;
  std::set<std::uint16_t> associations;
  /// Its stream's complete_when, and what of it arrived: instances by series.
  std::shared_ptr<const required_set> required;
  std::map<std::string, std::uint64_t> required_series;
  std::uint64_t required_instances = 0;
  /// Late instances of a study whose job `late_of` was made (the stream's
  /// `late` policy, not new_job).
  std::int64_t late_of = 0;
  std::string late;
};

/// A study whose job was made: late instances follow the stream's policy.
struct completed_entry {
  std::int64_t job = 0;
  caf::actor_clock::time_point at;
};

/// What the assembler starts with.
struct assembler_settings {
  job_store_actor job_store;
  job_manager_actor job_manager; // may be invalid (tests): jobs are then only created
  completion_config defaults;
  std::shared_ptr<streams::shared_registry> registry;
  node_metrics* metrics = nullptr; // may be null
  event_hub* events = nullptr;     // may be null
  /// Started again by its supervisor: the pending studies are rebuilt from
  /// the instances the job store still holds.
  bool restarted = false;
  /// Counts the instances of studies handed to the job store until they are
  /// answered; may be null.
  std::shared_ptr<intake_backlog> backlog;
};

struct assembler_state {
  assembler_settings settings;
  std::map<study_key, pending_group> groups;
  /// Studies completed in the last day (at most 10,000), for `late`.
  std::map<study_key, completed_entry> completed;
  /// Records of replaced copies, handed to the job store in batches.
  std::vector<journal_ref> replaced;
  bool discard_scheduled = false;
  static inline const char* name = "assembler";
};

assembler_actor::behavior_type assembler(assembler_actor::stateful_pointer<assembler_state> self,
                                         assembler_settings settings);

} // namespace dcmstreams
