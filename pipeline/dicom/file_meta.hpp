#pragma once
// The file meta information (PS3.10 group 0002) the listener writes in front
// of the data set bytes it receives. Encoded by hand: it is 200-odd bytes of
// explicit VR little endian, and the association facts (who sent it, to
// which AE, from where) belong in it.

#include <optional>
#include <string>
#include <string_view>

namespace dcmstreams {

/// dcmstreams' Implementation Class UID (a UUID-derived 2.25 UID, PS3.5 B.2).
extern const char* const implementation_class_uid;
/// dcmstreams' Implementation Version Name, at most 16 characters.
std::string implementation_version_name();

struct file_meta_fields {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string transfer_syntax_uid;
  std::string calling_ae;      // (0002,0016) and (0002,0017)
  std::string called_ae;       // (0002,0018)
  std::string sending_address; // (0002,0027), a URI such as dicom://10.0.0.5:4711
};

/// A Sending Presentation Address: "dicom://10.0.0.5:4711", "dicom://[::1]:4711".
std::string presentation_address(const std::string& peer, std::uint16_t port);

/// The 128-byte preamble, "DICM" and the encoded group 0002.
std::string encode_file_meta(const file_meta_fields& fields);

/// Where the data set starts in a Part 10 file's bytes (after the preamble,
/// "DICM" and group 0002, found through its group length); nothing if the
/// bytes do not start like such a file.
std::optional<std::size_t> dataset_offset(std::string_view file);

} // namespace dcmstreams
