#pragma once
// Logging as sentences, one line each, to standard error:
//   2026-11-28T07:49:13.123Z info  listener: accepted association STORESCU -> CT_SMOOTH from
//   127.0.0.1

#include <string>
#include <string_view>

namespace dcmstreams::log {

enum class level { debug, info, warning, error };

/// Parses "debug", "info", "warning" or "error".
bool parse_level(std::string_view text, level& out);
void set_level(level minimum);
bool enabled(level l);

void write(level l, std::string_view component, std::string_view message);

/// A duration for a sentence: "1.5 s".
std::string seconds_text(double seconds);

inline void debug(std::string_view component, std::string_view message) {
  if (enabled(level::debug))
    write(level::debug, component, message);
}
inline void info(std::string_view component, std::string_view message) {
  write(level::info, component, message);
}
inline void warning(std::string_view component, std::string_view message) {
  write(level::warning, component, message);
}
inline void error(std::string_view component, std::string_view message) {
  write(level::error, component, message);
}

} // namespace dcmstreams::log
