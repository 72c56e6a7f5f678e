#include "pipeline/foundation/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace dcmstreams::log {

namespace {
std::atomic<level> minimum_level{level::info};

const char* label(level l) {
  switch (l) {
  case level::debug:
    return "debug";
  case level::info:
    return "info ";
  case level::warning:
    return "warn ";
  case level::error:
    return "error";
  }
  return "?";
}
} // namespace

bool parse_level(std::string_view text, level& out) {
  if (text == "debug")
    out = level::debug;
  else if (text == "info")
    out = level::info;
  else if (text == "warning" || text == "warn")
    out = level::warning;
  else if (text == "error")
    out = level::error;
  else
    return false;
  return true;
}

void set_level(level minimum) {
  minimum_level = minimum;
}

bool enabled(level l) {
  return l >= minimum_level.load(std::memory_order_relaxed);
}

void write(level l, std::string_view component, std::string_view message) {
  if (!enabled(l))
    return;
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line keeps lines from different threads whole.
  std::fprintf(stderr, "%s.%03dZ %s %.*s: %.*s\n", stamp, static_cast<int>(millis.count()),
               label(l), static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
}

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds);
  return text;
}

} // namespace dcmstreams::log
