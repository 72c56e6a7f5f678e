#pragma once
// JSON for configuration files and documents we write: parsing with simdjson,
// syntax errors located by line and column, typed field readers that name the
// key path of every problem, and a small writer.

#include "pipeline/foundation/error.hpp"

#include <simdjson.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams::json {

/// A parsed JSON document that owns its memory.
class document {
public:
  /// Parses `text`; on a syntax error the failure says `<source>:<line>:<column>: <what>`.
  static result<document> parse(std::string_view text, const std::string& source);
  /// Reads and parses a file; the failure names the file.
  static result<document> load_file(const std::filesystem::path& path);

  simdjson::dom::element root() const { return root_; }

private:
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

struct syntax_error {
  std::size_t line = 1;
  std::size_t column = 1;
  std::string message;
};

/// Finds the first JSON syntax error in `text`, if any. simdjson says only
/// *that* a document is invalid; this says *where*, for people fixing files.
std::optional<syntax_error> find_syntax_error(std::string_view text);

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
/// `sink` with the full key path, and the getter returns nothing.
class object_reader {
public:
  object_reader(simdjson::dom::object object, std::string path, problems& sink)
      : object_(object), path_(std::move(path)), sink_(&sink) {}

  bool has(std::string_view key) const;
  std::optional<simdjson::dom::element> get(std::string_view key) const;

  std::optional<std::string> get_string(std::string_view key);
  std::optional<double> get_number(std::string_view key);
  std::optional<std::int64_t> get_integer(std::string_view key, std::int64_t min, std::int64_t max);
  /// true/false, or 1/0 as the old appliance's info.json files wrote it.
  std::optional<bool> get_flag(std::string_view key);
  std::optional<simdjson::dom::object> get_object(std::string_view key);
  std::optional<simdjson::dom::array> get_array(std::string_view key);
  /// A list of strings (an argv, a list of AE titles).
  std::optional<std::vector<std::string>> get_string_list(std::string_view key);

  /// Reports every key not in `known`, with a suggestion when one is close.
  void reject_unknown_keys(std::initializer_list<std::string_view> known);

  std::string path_of(std::string_view key) const;
  problems& sink() const { return *sink_; }
  simdjson::dom::object object() const { return object_; }

private:
  simdjson::dom::object object_;
  std::string path_;
  problems* sink_;
};

/// The JSON type of an element in words ("a string", "an array").
std::string describe_type(simdjson::dom::element element);

/// Escapes `text` as the inside of a JSON string.
std::string escape(std::string_view text);

/// Builds JSON text; `pretty` indents by two spaces for files people read.
class writer {
public:
  explicit writer(bool pretty = false) : pretty_(pretty) {}

  writer& begin_object();
  writer& end_object();
  writer& begin_array();
  writer& end_array();
  writer& key(std::string_view name);
  writer& value(std::string_view text);
  writer& value(const char* text) { return value(std::string_view{text}); }
  writer& value(const std::string& text) { return value(std::string_view{text}); }
  writer& value(std::int64_t number);
  writer& value(std::uint64_t number);
  writer& value(int number) { return value(static_cast<std::int64_t>(number)); }
  writer& value(double number);
  writer& value(bool flag);
  writer& null();
  /// Inserts already serialized JSON as one value.
  writer& raw(std::string_view json);

  const std::string& str() const { return out_; }

private:
  void before_value();
  void newline();

  std::string out_;
  std::vector<bool> has_items_;
  bool after_key_ = false;
  bool pretty_;
};

} // namespace dcmstreams::json
