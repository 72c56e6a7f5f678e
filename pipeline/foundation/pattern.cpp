#include "pipeline/foundation/pattern.hpp"

#include <algorithm>
#include <cctype>

namespace dcmstreams {

result<std::regex> compile_pattern(const std::string& pattern) {
  auto refuse = [&](const std::string& why) {
    return failure{ec::invalid_config, "\"" + pattern.substr(0, 80) +
                                           (pattern.size() > 80 ? "...\"" : "\"") +
                                           " is not a valid regular expression: " + why};
  };
  if (pattern.size() > max_pattern_length)
    return refuse("it is longer than " + std::to_string(max_pattern_length) + " characters");
  bool in_class = false; // inside [...], braces and digits are plain characters
  std::size_t repetitions = 1;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char next = pattern[++i]; // the escaped character
      if (next >= '1' && next <= '9')
        return refuse("back-references such as \\" + std::string(1, next) +
                      " are not supported (for a digit write [" + next + "])");
      continue;
    }
    if (c == '[')
      in_class = true;
    else if (c == ']')
      in_class = false;
    else if (c == '{' && !in_class) {
      // A repetition count: {n}, {n,} or {n,m}. libstdc++ copies what it
      // repeats that many times, and counts on counts multiply.
      std::size_t digits = 0, number = 0, largest = 0;
      for (std::size_t j = i + 1; j < pattern.size() && pattern[j] != '}'; ++j) {
        bool digit = std::isdigit(static_cast<unsigned char>(pattern[j])) != 0;
        digits = digit ? digits + 1 : 0;
        if (digits > 4)
          return refuse("repetition counts above 9999 are not supported");
        number = digit ? number * 10 + static_cast<std::size_t>(pattern[j] - '0') : 0;
        largest = std::max(largest, number);
      }
      repetitions *= std::max<std::size_t>(largest, 1);
      if (repetitions > max_repetitions)
        return refuse("its repetition counts multiply to more than " +
                      std::to_string(max_repetitions));
    }
  }
  try {
    return std::regex{pattern, std::regex::ECMAScript | std::regex::icase};
  } catch (const std::regex_error& e) {
    return refuse(e.what());
  }
}

} // namespace dcmstreams
