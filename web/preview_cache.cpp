#include "web/preview_cache.hpp"

#include <algorithm>

namespace dcmstreams::web {

namespace {

// Job folders the UI looks at hold a few studies at most; a bound keeps a
// long-running node from holding every index it ever made.
constexpr std::size_t max_indexes = 64;

} // namespace

std::string folder_signature::key() const {
  return std::to_string(files) + ":" + std::to_string(bytes) + ":" +
         std::to_string(latest_change_ns);
}

folder_signature sign_folder(const std::filesystem::path& folder) {
  folder_signature signature;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(folder, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error) || it->is_symlink(error))
      continue;
    auto size = it->file_size(error);
    auto changed = it->last_write_time(error);
    if (error)
      continue;
    ++signature.files;
    signature.bytes += size;
    signature.latest_change_ns = std::max<std::int64_t>(
        signature.latest_change_ns,
        std::chrono::duration_cast<std::chrono::nanoseconds>(changed.time_since_epoch()).count());
    signature.paths.push_back(it->path());
  }
  std::sort(signature.paths.begin(), signature.paths.end());
  return signature;
}

std::shared_ptr<const std::vector<preview_series>>
preview_cache::index(const std::filesystem::path& folder, const folder_signature& signature) {
  auto key = signature.key();
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto found = indexes_.find(folder.string());
    if (found != indexes_.end() && found->second.signature == key)
      return found->second.series;
  }
  // Read outside the lock: other folders' requests need not wait for it.
  auto series = std::make_shared<const std::vector<preview_series>>(index_series(signature.paths));
  std::lock_guard<std::mutex> guard{mutex_};
  if (indexes_.size() >= max_indexes && !indexes_.count(folder.string()))
    indexes_.erase(indexes_.begin());
  indexes_[folder.string()] = {key, series};
  return series;
}

std::optional<std::string> preview_cache::picture(const std::string& key) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto found = by_key_.find(key);
  if (found == by_key_.end())
    return std::nullopt;
  pictures_.splice(pictures_.begin(), pictures_, found->second);
  return found->second->second;
}

void preview_cache::keep_picture(const std::string& key, std::string png) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (png.size() > limit_ || by_key_.count(key))
    return;
  bytes_ += png.size();
  pictures_.emplace_front(key, std::move(png));
  by_key_[key] = pictures_.begin();
  while (bytes_ > limit_) {
    auto& oldest = pictures_.back();
    bytes_ -= oldest.second.size();
    by_key_.erase(oldest.first);
    pictures_.pop_back();
  }
}

} // namespace dcmstreams::web
