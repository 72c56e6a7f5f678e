#include "pipeline/foundation/json.hpp"

#include "pipeline/foundation/files.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace dcmstreams::json {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// nlohmann's message without its "[json.exception.parse_error.101] parse
/// error at line 1, column 9: " prefix: the place is said our way.
std::string what_of(const nlohmann::json::exception& e) {
  std::string_view text = e.what();
  if (auto bracket = text.find("] "); bracket != std::string_view::npos)
    text.remove_prefix(bracket + 2);
  if (auto colon = text.find(": "); text.rfind("parse error", 0) == 0 && colon != text.npos)
    text.remove_prefix(colon + 2);
  return std::string(text);
}

/// What people who edit JSON by hand most often get wrong, said plainly:
/// a comma before a closing bracket (JavaScript allows it, JSON does not).
std::string hint_at(std::string_view text, std::size_t at) {
  if (at >= text.size() || (text[at] != '}' && text[at] != ']'))
    return {};
  auto before = text.find_last_not_of(" \t\r\n", at == 0 ? 0 : at - 1);
  if (at == 0 || before == std::string_view::npos || text[before] != ',')
    return {};
  return std::string(" (a comma before '") + text[at] + "' ends nothing: remove it)";
}

} // namespace

result<value> parse(std::string_view text, const std::string& source) {
  try {
    return value::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte counts from 1 up to the byte that broke the document.
    auto at = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    auto before = text.substr(0, at);
    auto line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    auto line_start = before.rfind('\n');
    auto column = at - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
    return failure{ec::invalid_config, source + ":" + std::to_string(line) + ":" +
                                           std::to_string(column) +
                                           ": invalid JSON: " + what_of(e) + hint_at(text, at)};
  } catch (const nlohmann::json::exception& e) {
    return failure{ec::invalid_config, source + ": invalid JSON: " + what_of(e)};
  }
}

result<value> load_file(const std::filesystem::path& path) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  return parse(*text, path.string());
}

std::string dump(const value& v, bool pretty) {
  return v.dump(pretty ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void problems::add(const std::string& path, const std::string& message) {
  messages.push_back(path.empty() ? message : path + ": " + message);
}

std::string problems::report() const {
  std::string out;
  for (auto& message : messages) {
    if (!out.empty())
      out += '\n';
    out += source + ": " + message;
  }
  return out;
}

std::string describe_type(const value& v) {
  switch (v.type()) {
  case value::value_t::array:
    return "an array";
  case value::value_t::object:
    return "an object";
  case value::value_t::number_integer:
  case value::value_t::number_unsigned:
  case value::value_t::number_float:
    return "a number";
  case value::value_t::string:
    return "a string";
  case value::value_t::boolean:
    return "a boolean";
  case value::value_t::null:
    return "null";
  default:
    return "a value";
  }
}

std::string object_reader::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const value* object_reader::get(std::string_view key) const {
  if (!object_->is_object())
    return nullptr;
  auto found = object_->find(std::string(key));
  return found == object_->end() ? nullptr : &*found;
}

const value* object_reader::typed(std::string_view key, bool (value::*is)() const noexcept,
                                  const char* what) {
  auto element = get(key);
  if (element && !(element->*is)()) {
    sink_->add(path_of(key), std::string("must be ") + what + ", not " + describe_type(*element));
    return nullptr;
  }
  return element;
}

std::optional<std::string> object_reader::get_string(std::string_view key) {
  if (auto element = typed(key, &value::is_string, "a string"))
    return element->get<std::string>();
  return std::nullopt;
}

std::optional<double> object_reader::get_number(std::string_view key) {
  if (auto element = typed(key, &value::is_number, "a number"))
    return element->get<double>();
  return std::nullopt;
}

std::optional<double> object_reader::get_number(std::string_view key, bool (*accept)(double),
                                                std::string_view requirement) {
  auto number = get_number(key);
  if (!number || accept(*number))
    return number;
  sink_->add(path_of(key), "must be " + std::string(requirement));
  return std::nullopt;
}

std::optional<std::int64_t> object_reader::get_integer(std::string_view key, std::int64_t min,
                                                       std::int64_t max) {
  auto element = typed(key, &value::is_number_integer, "a whole number");
  if (!element)
    return std::nullopt;
  bool too_large = element->is_number_unsigned() &&
                   element->get<std::uint64_t>() >
                       static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  auto number = too_large ? std::numeric_limits<std::int64_t>::max() : element->get<std::int64_t>();
  if (too_large || number < min || number > max) {
    sink_->add(path_of(key), "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", not " + element->dump());
    return std::nullopt;
  }
  return number;
}

std::optional<bool> object_reader::get_flag(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  if (element->is_boolean())
    return element->get<bool>();
  if (element->is_number_integer() && (*element == 0 || *element == 1))
    return *element == 1;
  if (element->is_string() && (*element == "0" || *element == "1"))
    return *element == "1";
  sink_->add(path_of(key), "must be true, false, 1 or 0");
  return std::nullopt;
}

const value* object_reader::get_object(std::string_view key) {
  return typed(key, &value::is_object, "an object");
}

const value* object_reader::get_array(std::string_view key) {
  return typed(key, &value::is_array, "an array");
}

std::optional<std::vector<std::string>> object_reader::get_string_list(std::string_view key) {
  auto array = get_array(key);
  if (!array)
    return std::nullopt;
  std::vector<std::string> items;
  for (std::size_t index = 0; index < array->size(); ++index) {
    auto& element = (*array)[index];
    if (!element.is_string()) {
      sink_->add(path_of(key) + "[" + std::to_string(index) + "]",
                 "must be a string, not " + describe_type(element));
      return std::nullopt;
    }
    items.push_back(element.get<std::string>());
  }
  return items;
}

void object_reader::reject_unknown_keys(std::initializer_list<std::string_view> known) {
  if (!object_->is_object())
    return;
  for (auto& [key, field] : object_->items()) {
    if (std::find(known.begin(), known.end(), key) != known.end())
      continue;
    std::string message = "unknown key";
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (auto candidate : known) {
      auto distance = edit_distance(key, candidate);
      // Close enough to be a typo: a few edits, fewer for short names.
      auto allowed = std::max<std::size_t>(3, std::max(key.size(), candidate.size()) / 2);
      if (distance < allowed && distance < best_distance) {
        best = candidate;
        best_distance = distance;
      }
    }
    if (!best.empty())
      message += "; did you mean \"" + std::string(best) + "\"?";
    else {
      message += "; known keys are";
      bool first = true;
      for (auto candidate : known) {
        message += (first ? " " : ", ") + std::string(candidate);
        first = false;
      }
    }
    sink_->add(path_of(key), message);
  }
}

} // namespace dcmstreams::json
