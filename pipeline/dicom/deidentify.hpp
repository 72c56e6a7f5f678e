#pragma once
// De-identification by the Basic Application Confidentiality Profile of
// DICOM PS3.15 (Annex E, Table E.1-1): attributes removed (X), emptied (Z),
// replaced by dummies (D) or given new UIDs (U), in every sequence item;
// private attributes, overlay data and curves removed; UIDs mapped to new
// ones consistently within a job.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

class DcmItem;

namespace dcmstreams {

/// Maps each original UID to one new UID, the same every time it is asked.
class uid_mapper {
public:
  std::string map(const std::string& original);
  std::size_t size() const { return mapping_.size(); }

private:
  std::map<std::string, std::string> mapping_;
};

struct profile_entry {
  std::uint16_t group;
  std::uint16_t element;
  char action; // 'X' remove, 'Z' empty, 'D' dummy, 'U' new UID
  const char* keyword;
};

/// The profile's attributes and what happens to each.
const std::vector<profile_entry>& basic_profile();

/// De-identifies a data set in place (used by the derived-series writer too).
void deidentify(DcmItem& dataset, uid_mapper& uids);

/// Reads `input`, de-identifies it and writes `output` (same transfer syntax).
status deidentify_file(const std::filesystem::path& input, const std::filesystem::path& output,
                       uid_mapper& uids);

} // namespace dcmstreams
