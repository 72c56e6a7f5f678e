#include "pipeline/dicom/attribute_filter.hpp"

#include "pipeline/foundation/pattern.hpp"

#include "pipeline/dicom/dcmtk_file.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dctag.h>

#include <cstdio>

namespace dcmstreams {

namespace {

std::optional<DcmTagKey> tag_of(const std::string& name) {
  unsigned group = 0, element = 0;
  char extra = 0;
  std::string s = name;
  if (!s.empty() && s.front() == '(' && s.back() == ')')
    s = s.substr(1, s.size() - 2);
  if (std::sscanf(s.c_str(), "%4x,%4x%c", &group, &element, &extra) == 2 && s.size() == 9)
    return DcmTagKey(static_cast<Uint16>(group), static_cast<Uint16>(element));
  DcmTag tag;
  if (DcmTag::findTagFromName(name.c_str(), tag).good())
    return tag.getXTag();
  return std::nullopt;
}

} // namespace

std::optional<std::string> check_attribute_name(const std::string& name) {
  if (tag_of(name))
    return std::nullopt;
  return "\"" + name +
         "\" is neither a DICOM keyword (such as \"Modality\") nor a tag (such as "
         "\"0008,0060\")";
}

result<std::map<std::string, std::string>> read_attributes(const std::filesystem::path& file,
                                                           const std::vector<std::string>& names) {
  try {
    DcmFileFormat format;
    if (auto problem = load_dicom_file(format, file, 4096))
      return *problem;
    std::map<std::string, std::string> values;
    for (auto& name : names) {
      auto tag = tag_of(name);
      if (!tag)
        continue;
      OFString value;
      if (format.getDataset()->findAndGetOFStringArray(*tag, value).good())
        values[name] = value.c_str();
    }
    return values;
  } catch (const std::exception& e) {
    return failure{ec::invalid_dataset,
                   file.string() + ": not a readable DICOM file: DCMTK threw: " + e.what()};
  }
}

result<attribute_filter> attribute_filter::compile(std::vector<attribute_match> matches) {
  attribute_filter filter;
  for (auto& term : matches) {
    if (auto problem = check_attribute_name(term.attribute))
      return failure{ec::invalid_config, *problem};
    auto compiled = compile_pattern(term.pattern);
    if (!compiled)
      return compiled.error();
    filter.compiled_.push_back(std::make_shared<const std::regex>(std::move(*compiled)));
  }
  filter.terms_ = std::move(matches);
  return filter;
}

bool attribute_filter::matches(const std::map<std::string, std::string>& values) const {
  for (std::size_t i = 0; i < terms_.size(); ++i) {
    auto it = values.find(terms_[i].attribute);
    const std::string& value = it == values.end() ? std::string() : it->second;
    if (!std::regex_search(value, *compiled_[i]))
      return false;
  }
  return true;
}

std::vector<std::string> attribute_filter::attributes() const {
  std::vector<std::string> names;
  for (auto& term : terms_)
    names.push_back(term.attribute);
  return names;
}

std::string attribute_filter::describe() const {
  std::string text;
  for (auto& term : terms_)
    text += (text.empty() ? "" : ", ") + term.attribute + " ~ " + term.pattern;
  return text;
}

} // namespace dcmstreams
