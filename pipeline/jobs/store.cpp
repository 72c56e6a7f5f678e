#include "pipeline/jobs/store.hpp"

#include <cctype>

namespace dcmstreams {

bool valid_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 64 || uid.front() == '.' || uid.back() == '.')
    return false;
  char previous = 0;
  for (char c : uid) {
    if (c == '.') {
      if (previous == '.')
        return false;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
    previous = c;
  }
  return true;
}

namespace {

std::string encode_folder_name(std::string_view text, std::string_view also_kept) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '_' || also_kept.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 0x0f];
    }
  }
  return out;
}

} // namespace

std::string folder_name_for_ae(std::string_view ae_title) {
  return encode_folder_name(ae_title, "");
}

std::string sender_folder_name(std::string_view calling_ae, std::string_view peer) {
  // '@' is always encoded in either part, so the first '@' separates them.
  return encode_folder_name(calling_ae, "") + "@" + encode_folder_name(peer, ".:");
}

std::optional<std::string> ae_from_folder_name(std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '%') {
      out += name[i];
      continue;
    }
    if (i + 2 >= name.size() || !std::isxdigit(static_cast<unsigned char>(name[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(name[i + 2])))
      return std::nullopt;
    out += static_cast<char>(std::stoi(std::string(name.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  if (out.empty())
    return std::nullopt;
  return out;
}

std::filesystem::path store_layout::incoming_study_dir(std::string_view called_ae,
                                                       std::string_view calling_ae,
                                                       std::string_view peer,
                                                       std::string_view study_uid) const {
  return incoming_dir() / folder_name_for_ae(called_ae) / sender_folder_name(calling_ae, peer) /
         std::string(study_uid);
}

std::filesystem::path store_layout::incoming_instance(std::string_view called_ae,
                                                      std::string_view calling_ae,
                                                      std::string_view peer,
                                                      std::string_view study_uid,
                                                      std::string_view sop_uid) const {
  return incoming_study_dir(called_ae, calling_ae, peer, study_uid) /
         (std::string(sop_uid) + ".dcm");
}

std::filesystem::path store_layout::stored_instance(std::string_view study_uid,
                                                    std::string_view sop_uid) const {
  return store_dir() / std::string(study_uid) / (std::string(sop_uid) + ".dcm");
}

std::filesystem::path store_layout::job_dir(std::int64_t job_id) const {
  return jobs_dir() / std::to_string(job_id);
}

} // namespace dcmstreams
