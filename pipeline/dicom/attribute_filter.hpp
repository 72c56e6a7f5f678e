#pragma once
// Filters on DICOM attribute values: a stream's `accept` and a routing
// destination's `which`. A filter is a list of (attribute, regex) pairs that
// must all match; regexes are case-insensitive searches, as in the old
// appliance.

#include "pipeline/foundation/error.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace dcmstreams {

struct attribute_match {
  std::string attribute; // a keyword ("Modality") or a tag ("0008,0060")
  std::string pattern;
};

/// Whether `name` is a keyword of DCMTK's dictionary or a "gggg,eeee" tag;
/// if not, what is wrong.
std::optional<std::string> check_attribute_name(const std::string& name);

/// Values of the named attributes in a file, as strings (multiple values
/// joined with '\'); an absent attribute has no entry.
result<std::map<std::string, std::string>> read_attributes(const std::filesystem::path& file,
                                                           const std::vector<std::string>& names);

/// A filter with its regexes compiled once.
class attribute_filter {
public:
  /// Fails if a pattern is not a valid regex or an attribute is unknown.
  static result<attribute_filter> compile(std::vector<attribute_match> matches);

  /// Every pattern finds a match in its attribute's value; an absent
  /// attribute counts as the empty string. An empty filter matches all.
  bool matches(const std::map<std::string, std::string>& values) const;
  const std::vector<attribute_match>& terms() const { return terms_; }
  std::vector<std::string> attributes() const;
  bool empty() const { return terms_.empty(); }
  /// "Modality ~ CT|MR, SeriesDescription ~ ^AX"
  std::string describe() const;

private:
  std::vector<attribute_match> terms_;
  std::vector<std::shared_ptr<const std::regex>> compiled_;
};

} // namespace dcmstreams
