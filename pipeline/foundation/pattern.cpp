#include "pipeline/foundation/pattern.hpp"

namespace dcmstreams {

result<std::regex> compile_pattern(const std::string& pattern) {
  auto refuse = [&](const std::string& why) {
    return failure{ec::invalid_config, "\"" + pattern.substr(0, 80) +
                                           (pattern.size() > 80 ? "...\"" : "\"") +
                                           " is not a valid regular expression: " + why};
  };
  if (pattern.size() > max_pattern_length)
    return refuse("it is longer than " + std::to_string(max_pattern_length) + " characters");
  for (std::size_t i = 0; i + 1 < pattern.size(); ++i) {
    if (pattern[i] != '\\')
      continue;
    if (pattern[i + 1] >= '1' && pattern[i + 1] <= '9')
      return refuse("back-references such as \\" + std::string(1, pattern[i + 1]) +
                    " are not supported (for a digit write [" + pattern[i + 1] + "])");
    ++i; // the escaped character
  }
  try {
    return std::regex{pattern, std::regex::ECMAScript | std::regex::icase};
  } catch (const std::regex_error& e) {
    return refuse(e.what());
  }
}

} // namespace dcmstreams
