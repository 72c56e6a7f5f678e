#pragma once
// A stream: one folder <streams_dir>/<name>/ with an info.json (DESIGN §5).
// The old appliance's keys read as they were; the new keys say how a job runs.

#include "pipeline/dicom/attribute_filter.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/imaging/kernels.hpp"
#include <cstdint>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::streams {

enum class grouping { study, series };

/// Where a stream tells that a job ended ("notify"): an http:// or https://
/// URL that gets a POST with the job as JSON, for the job states in `on`.
struct notify_target {
  std::string url;
  std::string ca;              // https: the authority (PEM) to trust instead of the system's
  std::vector<std::string> on; // "success", "failed", "cancelled"
};

/// complete_when: a study completes as soon as this much of it has arrived
/// (the quiet period stays the fallback).
struct completion_rule {
  int series = 1;                 // distinct series that match the filters
  std::string modality;           // a regular expression (case-insensitive); empty: any
  std::string series_description; // the same
  std::int64_t min_instances = 0; // instances of matching series, together
};

struct stream_definition {
  std::string folder_name; // <name> of the folder; the stream's id
  std::filesystem::path folder;
  // Keys of the old appliance.
  std::string name;
  std::string description;
  std::string version;
  std::string ae_title;
  std::string license;
  bool enabled = true;
  // Keys of dcmstreams.
  std::vector<std::string> command; // argv; INPUT and OUTPUT are appended
  std::vector<kernel_step> pipeline;
  int concurrency = 1;
  double timeout_s = 0; // 0: no limit
  /// The most of a program's output processing.log keeps per run.
  std::uint64_t log_limit_mb = 64;
  std::optional<double> quiet_period_s;
  /// complete_on "release": a study also completes when an association that
  /// stored instances of it is released (the quiet period stays the fallback).
  bool complete_on_release = false;
  std::optional<completion_rule> complete_when;
  /// What instances that arrive after their study's job was made do:
  /// "new_job" (a study of their own), "ignore", "append_and_rerun".
  std::string late = "new_job";
  grouping group_by = grouping::study;
  std::vector<attribute_match> accept; // all must match for an instance to enter a job
  std::vector<notify_target> notify;
  /// Notes that do not stop the stream from loading (unknown keys, legacy work.sh).
  std::vector<std::string> notes;
};

/// Loads <folder>/info.json. The failure lists every problem, each naming the
/// file and key and saying what to write instead.
result<stream_definition> load_stream(const std::filesystem::path& folder);
/// The same for the text of an info.json in `folder` (the folder is looked
/// at only for a legacy work.sh and a relative program).
result<stream_definition> parse_stream(std::string_view text, const std::filesystem::path& folder);

} // namespace dcmstreams::streams
