#pragma once
// Studies uploaded over HTTP as a ZIP of DICOM files (the old appliance's
// processZip): each entry that is a DICOM Part 10 file is written durably
// into incoming/ exactly as the listener writes a received instance, with
// file meta that records the upload, so the rest of the node (the
// assembler, recovery after a crash) cannot tell the two apart.

#include "pipeline/foundation/error.hpp"
#include "pipeline/jobs/intake.hpp"

#include <cstddef>
#include <filesystem>
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

/// The part of a multipart/form-data body (RFC 7578) with this field name:
/// offset and length within `body`. Nothing if absent or the body is malformed.
struct form_part {
  std::string name;
  std::string filename;
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

} // namespace dcmstreams::web
