#pragma once
// Studies uploaded over HTTP as a ZIP of DICOM files (the old appliance's
// processZip): each entry that is a DICOM Part 10 file is written durably
// into incoming/ exactly as the listener writes a received instance, with
// file meta that records the upload, so the rest of the node (the
// assembler, recovery after a crash) cannot tell the two apart.

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/jobs/intake.hpp"
#include "pipeline/jobs/journal.hpp"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dcmstreams::web {

struct upload_source {
  std::string called_ae;  // the stream's AE title
  std::string calling_ae; // who uploads ("WEBUPLOAD" or the old client's sender)
  std::string peer;       // the HTTP client's address
};

struct unpacked_upload {
  std::vector<study_key> studies;                                // one per study in the ZIP
  std::vector<std::pair<study_key, arrived_instance>> instances; // durable in incoming/
  std::vector<std::string> skipped;                              // entries that were not DICOM, why
};

class written_files;

/// Writes uploaded DICOM Part 10 files into incoming/ one by one, durably,
/// as the listener writes received instances; what it wrote is removed again
/// unless `finish` is called (a failed upload leaves nothing).
class upload_store {
public:
  /// With `ingest_journal`, add_bytes keeps files that fit a record there.
  upload_store(std::filesystem::path data_dir, upload_source source, bool durable,
               std::uint64_t reserve_bytes, journal* ingest_journal = nullptr);
  ~upload_store();
  upload_store(const upload_store&) = delete;
  upload_store& operator=(const upload_store&) = delete;

  /// Gives up to `capacity` bytes of the file, 0 at its end, or -1 with
  /// `problem` set.
  using block_reader = std::function<long(char* block, std::size_t capacity, std::string& problem)>;

  /// What became of one file: stored, or why not (not DICOM, no UIDs).
  struct outcome {
    bool stored = false;
    std::string sop_class_uid;    // when its header could be read
    std::string sop_instance_uid; // when its header could be read
    std::string why;
  };
  /// Stores the file `name` (for messages) that `read` gives; `size`, when
  /// known, is checked against the reserve first. Fails as a whole (507 when
  /// the disk is too full, an I/O error), after which nothing is kept.
  result<outcome> add(const std::string& name, std::optional<std::uint64_t> size,
                      const block_reader& read);
  /// Stores a file held in memory (a STOW-RS part): as a journal record when
  /// there is a journal and the file fits one (finish makes every record
  /// durable with one flush), else as add() does.
  result<outcome> add_bytes(const std::string& name, std::string_view file);
  /// Keeps what was stored once it is durable; the instances and studies to
  /// tell the assembler. Fails (and keeps nothing) if the journal's flush does.
  result<unpacked_upload> finish();

private:
  bool has_room(std::uint64_t wanted) const;
  /// The header's problem for the uploader (no UIDs, not DICOM), if any.
  static std::optional<std::string> unusable(const result<instance_header>& header);
  void stored(const instance_header& header, arrived_instance instance);

  std::filesystem::path data_dir_;
  upload_source source_;
  bool durable_;
  std::uint64_t reserve_bytes_;
  std::filesystem::path scratch_;
  std::unique_ptr<written_files> written_;
  std::set<study_key> studies_;
  unpacked_upload stored_;
  journal* journal_;
  journal::writer writer_;           // this upload, as the journal's group commit sees it
  std::vector<journal_ref> records_; // appended, released unless finished
  journal_ticket last_record_;
  bool finished_ = false;
};

/// Unpacks the ZIP held in `bytes` (`size` of them) into incoming/, entry by
/// entry through a scratch file, so memory stays flat whatever an entry's
/// size. Fails when the archive cannot be read or holds no DICOM file at all,
/// and with out_of_resources (507) when an entry would take the data disk
/// below `reserve_bytes` free; a failed upload leaves none of its files.
/// Single entries that are not DICOM are listed in `skipped`.
result<unpacked_upload> unpack_upload(const void* bytes, std::size_t size,
                                      const std::filesystem::path& data_dir,
                                      const upload_source& source, bool durable,
                                      std::uint64_t reserve_bytes);

/// The parts of a multipart body (multipart/form-data, RFC 7578, or
/// multipart/related, RFC 2387): each one's offset and length within `body`.
/// Nothing if the body is malformed.
struct form_part {
  std::string name;
  std::string filename;
  std::string content_type; // the part's own Content-Type, lower case, without parameters
  std::size_t offset = 0;
  std::size_t length = 0;
};
std::vector<form_part> parse_multipart(std::string_view body, std::string_view content_type);

/// A read-only memory map of a file (upload bodies can be gigabytes).
class mapped_file {
public:
  static result<mapped_file> open(const std::filesystem::path& path);
  mapped_file(mapped_file&& other) noexcept;
  mapped_file& operator=(mapped_file&&) = delete;
  ~mapped_file();
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

private:
  mapped_file(void* data, std::size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

/// The body of an upload request (written to `body_file` as it arrived),
/// mapped; the file itself is removed at once, the mapping keeps the bytes.
result<std::shared_ptr<mapped_file>> take_upload_body(const std::string& body_file);

} // namespace dcmstreams::web
