#pragma once
// Makes the data sets one association receives durable, as storage.sync says
// (docs/ingest.md): a data set held in memory becomes a journal record (one
// group commit may cover many associations' records), a larger one received
// into a file is moved to its final name in incoming/. What DIMSE does
// around it is net/association.cpp.

#include "net/dicom_listener.hpp"
#include "pipeline/jobs/ingest.hpp"
#include "pipeline/jobs/journal.hpp"
#include "pipeline/jobs/store.hpp"

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams::net {

class instance_committer {
public:
  instance_committer(const listener_config& config, const store_layout& layout)
      : config_(config), layout_(layout) {}
  instance_committer(const instance_committer&) = delete;
  instance_committer& operator=(const instance_committer&) = delete;

  /// The association starts or ends: the journal's group commit counts it.
  void attach();
  void detach();
  /// A data set starts to arrive: a flush about to start may wait for it.
  void receiving() { writer_.active(); }

  /// Makes `data_set` (meta header and data set, held in memory) durable in
  /// the journal; sets `stored.record`.
  status commit_record(stored_instance& stored, std::string_view data_set);
  /// Moves a data set received into the file `temporary` to its final name
  /// in incoming/; sets `stored.path`.
  status commit_file(const std::filesystem::path& temporary, stored_instance& stored);
  /// storage.sync "association": makes what the association stored durable,
  /// before its release is acknowledged.
  void sync_association_writes();

private:
  const listener_config& config_;
  const store_layout& layout_;
  std::string known_dir_; // the last study folder known to exist
  std::vector<std::string> unsynced_files_;
  std::set<std::string> unsynced_dirs_;
  journal_ticket unsynced_record_; // sync_mode::association: the last record appended
  journal::writer writer_;         // this association, as the journal's group commit sees it
};

} // namespace dcmstreams::net
