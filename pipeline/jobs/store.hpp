#pragma once
// Where things live in the data folder (DESIGN §5, §6):
//
//   <data>/incoming/<called AE>/<calling AE>@<peer>/<StudyInstanceUID>/<SOPInstanceUID>.dcm
//       instances of studies still arriving (the truth for pending studies),
//       one folder per sender: two senders' copies of an instance never mix
//   <data>/incoming/.tmp/            files being received, never final
//   <data>/journal/segment-<n>.log   received instances until their study
//       completes (pipeline/jobs/journal.hpp); written out to incoming/ then
//   <data>/store/<StudyInstanceUID>/<SOPInstanceUID>.dcm
//       the latest copy of every instance of completed studies
//   <data>/jobs/<id>/{info.json,INPUT/,OUTPUT/,processing.log,proc.json}
//       INPUT/ entries are hard links to the store
//   <data>/dcmstreams.db             SQLite bookkeeping (jobs)

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace dcmstreams {

/// Whether `uid` is a DICOM UID safe to use as a file name: 1 to 64
/// characters, digits and dots, no empty component.
bool valid_uid(std::string_view uid);

/// Encodes an AE title as a folder name: letters, digits, '-', '_' stay,
/// every other byte becomes %XX, so "CT/../X" cannot leave its folder.
std::string folder_name_for_ae(std::string_view ae_title);
/// The reverse of folder_name_for_ae; nothing if `name` is not such a name.
std::optional<std::string> ae_from_folder_name(std::string_view name);
/// The folder of one sender under incoming/<called AE>/: "<calling AE>@<peer>",
/// both encoded as folder_name_for_ae does (the peer keeps its dots and colons).
std::string sender_folder_name(std::string_view calling_ae, std::string_view peer);

class store_layout {
public:
  explicit store_layout(std::filesystem::path data_dir) : data_(std::move(data_dir)) {}

  const std::filesystem::path& data_dir() const { return data_; }
  std::filesystem::path incoming_dir() const { return data_ / "incoming"; }
  std::filesystem::path receive_dir() const { return data_ / "incoming" / ".tmp"; }
  std::filesystem::path store_dir() const { return data_ / "store"; }
  std::filesystem::path journal_dir() const { return data_ / "journal"; }
  std::filesystem::path jobs_dir() const { return data_ / "jobs"; }
  std::filesystem::path database_file() const { return data_ / "dcmstreams.db"; }

  /// One sender's instances of one study, as (called AE, calling AE, peer,
  /// study) groups them. Requires valid UIDs (see valid_uid); callers check them first.
  std::filesystem::path incoming_study_dir(std::string_view called_ae, std::string_view calling_ae,
                                           std::string_view peer, std::string_view study_uid) const;
  std::filesystem::path incoming_instance(std::string_view called_ae, std::string_view calling_ae,
                                          std::string_view peer, std::string_view study_uid,
                                          std::string_view sop_uid) const;
  std::filesystem::path stored_instance(std::string_view study_uid, std::string_view sop_uid) const;
  std::filesystem::path job_dir(std::int64_t job_id) const;

private:
  std::filesystem::path data_;
};

} // namespace dcmstreams
