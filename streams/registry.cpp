#include "streams/registry.hpp"

#include <algorithm>
#include <map>

namespace dcmstreams::streams {

namespace fs = std::filesystem;

const stream_definition* registry_snapshot::find_by_ae(std::string_view ae_title) const {
  for (auto& stream : streams)
    if (stream.ae_title == ae_title)
      return &stream;
  return nullptr;
}

const stream_definition* registry_snapshot::find_by_name(std::string_view folder_name) const {
  for (auto& stream : streams)
    if (stream.folder_name == folder_name)
      return &stream;
  return nullptr;
}

namespace {

std::vector<fs::path> stream_folders(const fs::path& streams_dir, std::error_code& error) {
  std::vector<fs::path> folders;
  for (auto& entry : fs::directory_iterator(streams_dir, error))
    if (entry.is_directory() && entry.path().filename().string().front() != '.')
      folders.push_back(entry.path());
  std::sort(folders.begin(), folders.end());
  return folders;
}

} // namespace

registry_snapshot load_registry(const fs::path& streams_dir) {
  registry_snapshot snapshot;
  snapshot.streams_dir = streams_dir;
  std::error_code error;
  if (!fs::is_directory(streams_dir, error)) {
    snapshot.problems.push_back(streams_dir.string() +
                                ": the streams folder does not exist; create it or pass "
                                "--streams DIR");
    return snapshot;
  }
  auto folders = stream_folders(streams_dir, error);
  if (error) {
    // Out of descriptors, say: that says nothing about the streams.
    snapshot.listing_failed = true;
    snapshot.problems.push_back(streams_dir.string() + ": cannot list the streams folder (" +
                                error.message() + "); the streams loaded before stay");
    return snapshot;
  }
  std::vector<stream_definition> loaded;
  for (auto& folder : folders) {
    if (!fs::exists(folder / "info.json"))
      continue; // not a stream folder (e.g. shared scripts)
    auto stream = load_stream(folder);
    if (stream)
      loaded.push_back(std::move(*stream));
    else {
      snapshot.problems.push_back(stream.error().message + "\n  -> stream " +
                                  folder.filename().string() + " skipped");
      snapshot.unusable.push_back(folder.filename().string());
    }
  }
  // One AE title must lead to one stream; an ambiguous title reaches neither.
  std::map<std::string, std::vector<const stream_definition*>> by_title;
  for (auto& stream : loaded)
    by_title[stream.ae_title].push_back(&stream);
  for (auto& [title, claimants] : by_title) {
    if (claimants.size() < 2)
      continue;
    std::string folders;
    for (auto* s : claimants)
      folders += (folders.empty() ? "" : " and ") + s->folder.string();
    snapshot.problems.push_back("AE title \"" + title + "\" is claimed by " + folders +
                                "; give each stream its own AETitle -> all of them skipped");
  }
  for (auto& stream : loaded)
    if (by_title[stream.ae_title].size() == 1)
      snapshot.streams.push_back(std::move(stream));
  return snapshot;
}

std::optional<std::string> registry_fingerprint(const fs::path& streams_dir) {
  std::string fingerprint;
  std::error_code listing;
  auto folders = stream_folders(streams_dir, listing);
  if (listing && listing != std::errc::no_such_file_or_directory)
    return std::nullopt;
  for (auto& folder : folders) {
    fingerprint += folder.filename().string();
    for (const char* name : {"info.json", "work.sh"}) {
      std::error_code error;
      auto path = folder / name;
      auto size = fs::file_size(path, error);
      if (error)
        continue;
      auto time = fs::last_write_time(path, error).time_since_epoch().count();
      fingerprint +=
          "|" + std::string(name) + ":" + std::to_string(size) + ":" + std::to_string(time);
    }
    fingerprint += "\n";
  }
  return fingerprint;
}

std::shared_ptr<const registry_snapshot> shared_registry::get() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return current_;
}

void shared_registry::set(std::shared_ptr<const registry_snapshot> snapshot) {
  std::lock_guard<std::mutex> guard{mutex_};
  current_ = std::move(snapshot);
}

} // namespace dcmstreams::streams
