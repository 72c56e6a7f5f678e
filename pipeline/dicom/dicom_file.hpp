#pragma once
// Reading what the node needs to know about a stored DICOM file. All DCMTK
// parsing in pipeline/ goes through here, inside try/catch: Debian's DCMTK
// 3.6.7 throws on some malformed data sets (stack notes §12).

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dcmstreams {

struct instance_header {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string study_uid;
  std::string series_uid;
  std::string modality;
  std::string series_description;
  std::string transfer_syntax_uid;
  // File meta information the node writes when it receives an instance.
  std::string source_ae;       // (0002,0016) the calling AE title (DCMTK's custom)
  std::string sending_ae;      // (0002,0017) the calling AE title
  std::string receiving_ae;    // (0002,0018) the called AE title
  std::string sending_address; // (0002,0027) "dicom://<peer address>:<port>"
};

/// The peer host of a Sending Presentation Address ("dicom://10.0.0.5:4711"
/// gives "10.0.0.5"); the text itself if it is not such a URI.
std::string host_of_presentation_address(const std::string& address);

/// Parses the whole data set structure (values above 4 KB are not loaded), so
/// a truncated or malformed file is reported, and returns its key attributes.
result<instance_header> read_instance_header(const std::filesystem::path& path);
/// The same from the bytes of a file held in memory; `name` starts the message.
result<instance_header> read_instance_header(std::string_view bytes, const std::string& name);

/// Reads only the file meta information (group 0002): cheap, for recovery scans.
result<instance_header> read_file_meta(const std::filesystem::path& path);

/// Whether a file starts like a DICOM Part 10 file ("DICM" after the preamble).
bool looks_like_dicom(const std::filesystem::path& file);

/// Now, in local time, as DICOM writes a date (DA, "20261207") and a time (TM, "031602").
struct dicom_date_time {
  std::string date;
  std::string time;
};
dicom_date_time dicom_now();

/// Fails unless DCMTK's data dictionary is loaded (it is needed to parse).
status check_dicom_dictionary();

/// The name of a transfer syntax ("JPEG-LS Lossless") from its UID, or the UID.
std::string transfer_syntax_name(const std::string& uid);

} // namespace dcmstreams
