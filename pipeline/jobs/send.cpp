#include "pipeline/jobs/send.hpp"

#include <array>
#include <utility>

namespace dcmstreams {

namespace {

constexpr std::array<std::pair<send_state, const char*>, 5> send_states{{
    {send_state::queued, "queued"},
    {send_state::sending, "sending"},
    {send_state::retrying, "retrying"},
    {send_state::done, "done"},
    {send_state::failed, "failed"},
}};

constexpr std::array<std::pair<file_send_state, const char*>, 5> file_states{{
    {file_send_state::pending, "pending"},
    {file_send_state::sent, "sent"},
    {file_send_state::warning, "warning"},
    {file_send_state::refused, "refused"},
    {file_send_state::missing, "missing"},
}};

template <class Enum, std::size_t N>
const char* name_of(const std::array<std::pair<Enum, const char*>, N>& names, Enum value) {
  for (auto& [known, name] : names)
    if (known == value)
      return name;
  return "?";
}

template <class Enum, std::size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, const char*>, N>& names,
                             std::string_view text) {
  for (auto& [known, name] : names)
    if (text == name)
      return known;
  return std::nullopt;
}

} // namespace

const char* to_string(send_state state) {
  return name_of(send_states, state);
}

std::optional<send_state> parse_send_state(std::string_view text) {
  return value_of(send_states, text);
}

bool is_finished(send_state state) {
  return state == send_state::done || state == send_state::failed;
}

const char* to_string(file_send_state state) {
  return name_of(file_states, state);
}

std::optional<file_send_state> parse_file_send_state(std::string_view text) {
  return value_of(file_states, text);
}

bool is_stored(file_send_state state) {
  return state == file_send_state::sent || state == file_send_state::warning;
}

} // namespace dcmstreams
