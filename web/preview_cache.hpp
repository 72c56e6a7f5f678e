#pragma once
// What previews cost to make, kept: each job folder's series index (one
// header read per file) and the PNGs rendered from it, both keyed by the
// folder's signature (its files' count, sizes and latest change), so a job
// that runs again never shows the pictures of its earlier run. Thread-safe;
// the pictures are held up to a byte limit, least recently used first out.
// Private to web/.

#include "pipeline/imaging/preview.hpp"

#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::web {

/// What a folder holds, as far as its pictures depend on it.
struct folder_signature {
  std::size_t files = 0;
  std::uintmax_t bytes = 0;
  std::int64_t latest_change_ns = 0;
  std::vector<std::filesystem::path> paths; // sorted

  std::string key() const;
};

/// Walks `folder` (regular files only, no symbolic links followed).
folder_signature sign_folder(const std::filesystem::path& folder);

class preview_cache {
public:
  explicit preview_cache(std::size_t picture_bytes_limit) : limit_(picture_bytes_limit) {}

  /// The series of `folder` as `sign_folder` found it, indexed once per signature.
  std::shared_ptr<const std::vector<preview_series>> index(const std::filesystem::path& folder,
                                                           const folder_signature& signature);

  std::optional<std::string> picture(const std::string& key);
  void keep_picture(const std::string& key, std::string png);

private:
  struct indexed {
    std::string signature;
    std::shared_ptr<const std::vector<preview_series>> series;
  };
  std::mutex mutex_;
  std::map<std::string, indexed> indexes_; // by folder
  std::size_t limit_;
  std::size_t bytes_ = 0;
  std::list<std::pair<std::string, std::string>> pictures_; // most recent first
  std::map<std::string, std::list<std::pair<std::string, std::string>>::iterator> by_key_;
};

} // namespace dcmstreams::web
