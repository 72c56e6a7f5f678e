#pragma once
// All streams of a streams folder, by AE title, and a thread-safe holder so
// that association threads read the current set while a reload replaces it.

#include "streams/stream.hpp"

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams::streams {

struct registry_snapshot {
  std::filesystem::path streams_dir;
  std::vector<stream_definition> streams; // loaded, enabled or not, by folder name
  std::vector<std::string> problems;      // streams skipped, each with its reasons
  std::vector<std::string> unusable;      // folders whose info.json failed to load
  bool listing_failed = false;            // the folder could not be read: nothing is known

  /// The stream with this AE title (enabled or not), or null.
  const stream_definition* find_by_ae(std::string_view ae_title) const;
  /// The stream in this folder, or null.
  const stream_definition* find_by_name(std::string_view folder_name) const;
};

/// Loads every <streams_dir>/*/info.json. A bad stream is skipped with its
/// reasons in `problems`; the others load. Two streams with one AE title are
/// both skipped, and the problem names both folders.
registry_snapshot load_registry(const std::filesystem::path& streams_dir);

/// A cheap summary of the streams folder (names, sizes and times of every
/// info.json and work.sh) that changes whenever a reload is due.
std::optional<std::string> registry_fingerprint(const std::filesystem::path& streams_dir);

/// Holds the current snapshot; readers get a shared pointer they may keep.
class shared_registry {
public:
  std::shared_ptr<const registry_snapshot> get() const;
  void set(std::shared_ptr<const registry_snapshot> snapshot);

private:
  mutable std::mutex mutex_;
  std::shared_ptr<const registry_snapshot> current_ = std::make_shared<registry_snapshot>();
};

} // namespace dcmstreams::streams
