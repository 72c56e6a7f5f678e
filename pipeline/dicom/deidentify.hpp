#pragma once
// De-identification by the Basic Application Confidentiality Profile of
// DICOM PS3.15 (Annex E, Table E.1-1): attributes removed (X), emptied (Z),
// replaced by dummies (D) or given new UIDs (U), in every sequence item;
// private attributes, overlay data and curves removed. UIDs, the patient's
// ID and name, and (as an option) dates get keyed pseudonyms: the same
// under the node's secret in every job.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

class DcmItem;

namespace dcmstreams {

/// What a de-identification keeps beside the Basic Profile.
struct deidentify_options {
  /// Dates (DA, DT) the profile would remove are moved back by a number of
  /// days of the patient's own (1 to 365) instead: PS3.15's "Retain
  /// Longitudinal Temporal Information with Modified Dates" option.
  bool shift_dates = false;
  /// Keep a record of what each pseudonym stands for (deidentify.keep_mapping).
  bool keep_mapping = false;
};

/// What one pseudonym stands for.
struct pseudonym_record {
  std::string pseudonym;
  std::string kind; // "uid", "patient_id" or "patient_name"
  std::string original;
};

/// Keyed pseudonyms (HMAC-SHA256 under the node's secret): the same original
/// UID, patient or date always gives the same result under one key, in every
/// job and after restarts, so a study sent again, or late instances, are
/// de-identified into the same study; without the key nobody can go back.
class pseudonymizer {
public:
  /// An empty key takes a random one: stable within this object only.
  explicit pseudonymizer(std::string key, deidentify_options options = {});

  /// "2.25." and a 128-bit number (a UUID, PS3.5 B.2) derived from `original`.
  std::string uid(const std::string& original);
  /// "ANON-" and 12 characters derived from what identifies the patient.
  std::string patient(const std::string& patient_key) const;
  /// Days (1 to 365) the patient's dates move back.
  int day_shift(const std::string& patient_key) const;
  const deidentify_options& options() const { return options_; }
  /// UIDs mapped so far.
  std::size_t size() const { return uids_.size(); }
  /// With keep_mapping: notes that `pseudonym` stands for `original`.
  void note(const std::string& pseudonym, const std::string& kind, const std::string& original);
  /// The records noted since the last call.
  std::vector<pseudonym_record> take_records() { return std::move(records_); }

private:
  std::string digest(std::string_view domain, const std::string& value) const;

  std::string key_;
  deidentify_options options_;
  std::map<std::string, std::string> uids_;
  std::set<std::pair<std::string, std::string>> noted_; // (pseudonym, kind)
  std::vector<pseudonym_record> records_;
};

struct profile_entry {
  std::uint16_t group;
  std::uint16_t element;
  char action; // 'X' remove, 'Z' empty, 'D' dummy, 'U' new UID, 'P' the patient's pseudonym
  const char* keyword;
};

/// The profile's attributes and what happens to each.
const std::vector<profile_entry>& basic_profile();

/// De-identifies a data set in place (used by the derived-series writer too).
void deidentify(DcmItem& dataset, pseudonymizer& pseudonyms);

/// Reads `input`, de-identifies it and writes `output` (same transfer syntax).
status deidentify_file(const std::filesystem::path& input, const std::filesystem::path& output,
                       pseudonymizer& pseudonyms);

} // namespace dcmstreams
