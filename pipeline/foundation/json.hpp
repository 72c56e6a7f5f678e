#pragma once
// JSON for configuration files, the documents we write and the API: values
// are nlohmann-json's (key order kept as written), syntax errors are located
// by line and column, and typed field readers name the key path of every
// problem and suggest the key that was meant. simdjson stays where many
// documents are parsed fast (the kernels' parameters are read once per job,
// the tests' API replies); nothing here uses it.

#include "pipeline/foundation/error.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams::json {

/// A JSON value; objects keep their keys in the order they were written.
using value = nlohmann::ordered_json;

/// Parses `text`; on a syntax error the failure says `<source>:<line>:<column>: invalid JSON:
/// <what>`.
result<value> parse(std::string_view text, const std::string& source);
/// Reads and parses a file; the failure names the file.
result<value> load_file(const std::filesystem::path& path);

/// JSON text of `v`: compact, or indented by two spaces for files people
/// read. Bytes that are not UTF-8 (a Latin-1 name from a data set) become
/// U+FFFD instead of failing.
std::string dump(const value& v, bool pretty = false);

/// Problems found in one file, each naming the key path: `streams[2].AETitle: ...`.
struct problems {
  std::string source; // the file, as shown to users
  std::vector<std::string> messages;

  void add(const std::string& path, const std::string& message);
  bool empty() const { return messages.empty(); }
  /// All problems, one per line, each prefixed with the file.
  std::string report() const;
};

/// Reads the fields of one JSON object with type checks; each problem goes to
/// `sink` with the full key path, and the getter returns nothing. The object
/// must outlive the reader and what its getters return.
class object_reader {
public:
  object_reader(const value& object, std::string path, problems& sink)
      : object_(&object), path_(std::move(path)), sink_(&sink) {}

  bool has(std::string_view key) const { return get(key) != nullptr; }
  /// The value of `key`, or null when the object has no such key.
  const value* get(std::string_view key) const;

  std::optional<std::string> get_string(std::string_view key);
  std::optional<double> get_number(std::string_view key);
  /// A number that `accept` takes; otherwise the problem "must be <requirement>".
  std::optional<double> get_number(std::string_view key, bool (*accept)(double),
                                   std::string_view requirement);
  std::optional<std::int64_t> get_integer(std::string_view key, std::int64_t min, std::int64_t max);
  /// true/false, or 1/0 as the old appliance's info.json files wrote it.
  std::optional<bool> get_flag(std::string_view key);
  const value* get_object(std::string_view key);
  const value* get_array(std::string_view key);
  /// A list of strings (an argv, a list of AE titles).
  std::optional<std::vector<std::string>> get_string_list(std::string_view key);

  /// Reads the object at `key`, if there is one, with `read(object_reader&)`:
  /// its problems are named below `key`.
  template <class Read> void with_object(std::string_view key, Read read) {
    if (auto object = get_object(key)) {
      object_reader sub{*object, path_of(key), *sink_};
      read(sub);
    }
  }

  /// Reports every key not in `known`, with a suggestion when one is close.
  void reject_unknown_keys(std::initializer_list<std::string_view> known);

  std::string path_of(std::string_view key) const;
  problems& sink() const { return *sink_; }
  const value& object() const { return *object_; }

private:
  const value* typed(std::string_view key, bool (value::*is)() const noexcept, const char* what);

  const value* object_;
  std::string path_;
  problems* sink_;
};

/// Common rules for get_number.
inline bool above_zero(double v) {
  return v > 0;
}
inline bool at_least_zero(double v) {
  return v >= 0;
}
inline bool at_least_one(double v) {
  return v >= 1;
}

/// The JSON type of a value in words ("a string", "an array").
std::string describe_type(const value& v);

} // namespace dcmstreams::json
