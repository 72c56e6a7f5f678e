#include "pipeline/dicom/file_meta.hpp"

#include "build_info.hpp"

#include <cstdint>

namespace dcmstreams {

const char* const implementation_class_uid = "2.25.243472885875447799361077336679689112362";

std::string implementation_version_name() {
  std::string name = std::string("DCMSTREAMS_") + build_info::version;
  return name.substr(0, 16);
}

namespace {

void put_u16(std::string& out, std::uint16_t value) {
  out += static_cast<char>(value & 0xff);
  out += static_cast<char>(value >> 8);
}

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8)
    out += static_cast<char>((value >> shift) & 0xff);
}

// VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
bool long_form(const char* vr) {
  std::string v{vr};
  return v == "OB" || v == "OW" || v == "OF" || v == "SQ" || v == "UT" || v == "UN" || v == "UR" ||
         v == "UC";
}

void put_element(std::string& out, std::uint16_t element, const char* vr, std::string value,
                 char padding) {
  if (value.size() % 2)
    value += padding;
  put_u16(out, 0x0002);
  put_u16(out, element);
  out += vr;
  if (long_form(vr)) {
    put_u16(out, 0);
    put_u32(out, static_cast<std::uint32_t>(value.size()));
  } else {
    put_u16(out, static_cast<std::uint16_t>(value.size()));
  }
  out += value;
}

} // namespace

std::string encode_file_meta(const file_meta_fields& fields) {
  std::string group;
  put_element(group, 0x0001, "OB", std::string("\x00\x01", 2), '\0');
  put_element(group, 0x0002, "UI", fields.sop_class_uid, '\0');
  put_element(group, 0x0003, "UI", fields.sop_instance_uid, '\0');
  put_element(group, 0x0010, "UI", fields.transfer_syntax_uid, '\0');
  put_element(group, 0x0012, "UI", implementation_class_uid, '\0');
  put_element(group, 0x0013, "SH", implementation_version_name(), ' ');
  if (!fields.calling_ae.empty()) {
    put_element(group, 0x0016, "AE", fields.calling_ae, ' ');
    put_element(group, 0x0017, "AE", fields.calling_ae, ' ');
  }
  if (!fields.called_ae.empty())
    put_element(group, 0x0018, "AE", fields.called_ae, ' ');
  if (!fields.sending_address.empty())
    put_element(group, 0x0027, "UR", fields.sending_address, ' ');

  std::string out(128, '\0');
  out += "DICM";
  put_u16(out, 0x0002);
  put_u16(out, 0x0000);
  out += "UL";
  put_u16(out, 4);
  put_u32(out, static_cast<std::uint32_t>(group.size()));
  out += group;
  return out;
}

std::optional<std::size_t> dataset_offset(std::string_view file) {
  // (0002,0000) UL in explicit VR little endian: tag, "UL", length 4, value.
  if (file.size() < 144 || file.substr(128, 4) != "DICM" ||
      file.substr(132, 4) != std::string_view("\x02\x00\x00\x00", 4) || file.substr(136, 2) != "UL")
    return std::nullopt;
  auto byte = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(file[i]));
  };
  std::uint32_t group_length = byte(140) | (byte(141) << 8) | (byte(142) << 16) | (byte(143) << 24);
  std::size_t offset = 144 + std::size_t{group_length};
  if (offset > file.size())
    return std::nullopt;
  return offset;
}

std::string presentation_address(const std::string& peer, std::uint16_t port) {
  bool ipv6 = peer.find(':') != std::string::npos;
  return "dicom://" + (ipv6 ? "[" + peer + "]" : peer) + ":" + std::to_string(port);
}

} // namespace dcmstreams
