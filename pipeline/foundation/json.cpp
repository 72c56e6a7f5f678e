#include "pipeline/foundation/json.hpp"

#include "pipeline/foundation/files.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace dcmstreams::json {

namespace {

// A recursive-descent scanner that follows RFC 8259 only to find where a
// document stops being JSON. It builds nothing.
class syntax_scanner {
public:
  explicit syntax_scanner(std::string_view text) : text_(text) {}

  std::optional<syntax_error> run() {
    skip_space();
    if (!value(0))
      return error_;
    skip_space();
    if (pos_ != text_.size())
      return fail("unexpected text after the end of the document");
    return std::nullopt;
  }

private:
  static constexpr int max_depth = 1024;

  bool value(int depth) {
    if (depth > max_depth) {
      fail("nesting is deeper than " + std::to_string(max_depth) + " levels");
      return false;
    }
    if (pos_ >= text_.size()) {
      fail("unexpected end of the document, a value is missing");
      return false;
    }
    char c = text_[pos_];
    switch (c) {
    case '{':
      return object(depth);
    case '[':
      return array(depth);
    case '"':
      return string();
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default:
      if (c == '-' || std::isdigit(static_cast<unsigned char>(c)))
        return number();
      if (c == '\'') {
        fail("strings must be in double quotes, not single quotes");
        return false;
      }
      fail(std::string("unexpected character '") + c + "', a value is expected");
      return false;
    }
  }

  bool object(int depth) {
    ++pos_; // '{'
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      if (peek() != '"') {
        if (peek() == '}')
          fail("a comma before '}' is not allowed in JSON");
        else
          fail("a key in double quotes is expected");
        return false;
      }
      if (!string())
        return false;
      skip_space();
      if (peek() != ':') {
        fail("':' is expected after the key");
        return false;
      }
      ++pos_;
      skip_space();
      if (!value(depth + 1))
        return false;
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      fail(pos_ >= text_.size() ? "unexpected end of the document: '}' is missing"
                                : "',' or '}' is expected after an object member");
      return false;
    }
  }

  bool array(int depth) {
    ++pos_; // '['
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      if (peek() == ']') {
        fail("a comma before ']' is not allowed in JSON");
        return false;
      }
      if (!value(depth + 1))
        return false;
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      fail(pos_ >= text_.size() ? "unexpected end of the document: ']' is missing"
                                : "',' or ']' is expected after an array element");
      return false;
    }
  }

  bool string() {
    ++pos_; // opening quote
    while (pos_ < text_.size()) {
      auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) {
        fail("a control character (such as a line break) inside a string must be escaped");
        return false;
      }
      if (c == '\\') {
        ++pos_;
        char e = peek();
        if (e == 'u') {
          for (int i = 1; i <= 4; ++i)
            if (pos_ + i >= text_.size() ||
                !std::isxdigit(static_cast<unsigned char>(text_[pos_ + i]))) {
              fail("\\u must be followed by four hexadecimal digits");
              return false;
            }
          pos_ += 5;
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || e == '\0') {
          fail(std::string("invalid escape sequence '\\") + e + "'");
          return false;
        }
        ++pos_;
        continue;
      }
      ++pos_;
    }
    fail("the string is not closed with a double quote");
    return false;
  }

  bool number() {
    if (peek() == '-')
      ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (std::isdigit(static_cast<unsigned char>(peek()))) {
      while (std::isdigit(static_cast<unsigned char>(peek())))
        ++pos_;
    } else {
      fail("a digit is expected in the number");
      return false;
    }
    if (peek() == '.') {
      ++pos_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) {
        fail("a digit is expected after the decimal point");
        return false;
      }
      while (std::isdigit(static_cast<unsigned char>(peek())))
        ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-')
        ++pos_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) {
        fail("a digit is expected in the exponent");
        return false;
      }
      while (std::isdigit(static_cast<unsigned char>(peek())))
        ++pos_;
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      fail("unknown word; expected true, false, null, a number, a string, an object or an array");
      return false;
    }
    pos_ += word.size();
    return true;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  std::optional<syntax_error> fail(std::string message) {
    syntax_error e;
    e.message = std::move(message);
    for (std::size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++e.line;
        e.column = 1;
      } else {
        ++e.column;
      }
    }
    error_ = e;
    return error_;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::optional<syntax_error> error_;
};

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

} // namespace

std::optional<syntax_error> find_syntax_error(std::string_view text) {
  return syntax_scanner{text}.run();
}

result<document> document::parse(std::string_view text, const std::string& source) {
  document doc;
  doc.parser_ = std::make_unique<simdjson::dom::parser>();
  auto parsed = doc.parser_->parse(text.data(), text.size(), true);
  if (parsed.error() != simdjson::SUCCESS) {
    if (auto where = find_syntax_error(text))
      return failure{ec::invalid_config, source + ":" + std::to_string(where->line) + ":" +
                                             std::to_string(where->column) +
                                             ": invalid JSON: " + where->message};
    return failure{ec::invalid_config,
                   source + ": invalid JSON: " + simdjson::error_message(parsed.error())};
  }
  doc.root_ = parsed.value_unsafe();
  return doc;
}

result<document> document::load_file(const std::filesystem::path& path) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  return parse(*text, path.string());
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

std::string describe_type(simdjson::dom::element element) {
  switch (element.type()) {
  case simdjson::dom::element_type::ARRAY:
    return "an array";
  case simdjson::dom::element_type::OBJECT:
    return "an object";
  case simdjson::dom::element_type::INT64:
  case simdjson::dom::element_type::UINT64:
  case simdjson::dom::element_type::DOUBLE:
    return "a number";
  case simdjson::dom::element_type::STRING:
    return "a string";
  case simdjson::dom::element_type::BOOL:
    return "a boolean";
  case simdjson::dom::element_type::NULL_VALUE:
    return "null";
  }
  return "a value";
}

std::string object_reader::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool object_reader::has(std::string_view key) const {
  return get(key).has_value();
}

std::optional<simdjson::dom::element> object_reader::get(std::string_view key) const {
  simdjson::dom::element element;
  if (object_.at_key(key).get(element) != simdjson::SUCCESS)
    return std::nullopt;
  return element;
}

std::optional<std::string> object_reader::get_string(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  std::string_view text;
  if (element->get(text) != simdjson::SUCCESS) {
    sink_->add(path_of(key), "must be a string, not " + describe_type(*element));
    return std::nullopt;
  }
  return std::string(text);
}

std::optional<double> object_reader::get_number(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  double number = 0;
  if (element->get(number) != simdjson::SUCCESS) {
    sink_->add(path_of(key), "must be a number, not " + describe_type(*element));
    return std::nullopt;
  }
  return number;
}

std::optional<std::int64_t> object_reader::get_integer(std::string_view key, std::int64_t min,
                                                       std::int64_t max) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  std::int64_t number = 0;
  if (element->get(number) != simdjson::SUCCESS) {
    sink_->add(path_of(key), "must be a whole number, not " + describe_type(*element));
    return std::nullopt;
  }
  if (number < min || number > max) {
    sink_->add(path_of(key), "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", not " + std::to_string(number));
    return std::nullopt;
  }
  return number;
}

std::optional<bool> object_reader::get_flag(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  bool flag = false;
  if (element->get(flag) == simdjson::SUCCESS)
    return flag;
  std::int64_t number = 0;
  if (element->get(number) == simdjson::SUCCESS && (number == 0 || number == 1))
    return number == 1;
  std::string_view text;
  if (element->get(text) == simdjson::SUCCESS && (text == "0" || text == "1"))
    return text == "1";
  sink_->add(path_of(key), "must be true, false, 1 or 0");
  return std::nullopt;
}

std::optional<simdjson::dom::object> object_reader::get_object(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  simdjson::dom::object object;
  if (element->get(object) != simdjson::SUCCESS) {
    sink_->add(path_of(key), "must be an object, not " + describe_type(*element));
    return std::nullopt;
  }
  return object;
}

std::optional<simdjson::dom::array> object_reader::get_array(std::string_view key) {
  auto element = get(key);
  if (!element)
    return std::nullopt;
  simdjson::dom::array array;
  if (element->get(array) != simdjson::SUCCESS) {
    sink_->add(path_of(key), "must be an array, not " + describe_type(*element));
    return std::nullopt;
  }
  return array;
}

std::optional<std::vector<std::string>> object_reader::get_string_list(std::string_view key) {
  auto array = get_array(key);
  if (!array)
    return std::nullopt;
  std::vector<std::string> items;
  std::size_t index = 0;
  for (auto element : *array) {
    std::string_view text;
    if (element.get(text) != simdjson::SUCCESS) {
      sink_->add(path_of(key) + "[" + std::to_string(index) + "]",
                 "must be a string, not " + describe_type(element));
      return std::nullopt;
    }
    items.emplace_back(text);
    ++index;
  }
  return items;
}

void object_reader::reject_unknown_keys(std::initializer_list<std::string_view> known) {
  for (auto field : object_) {
    std::string_view key = field.key;
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

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned char>(c));
        out += buffer;
      } else {
        out += c;
      }
    }
  }
  return out;
}

void writer::newline() {
  if (!pretty_)
    return;
  out_ += '\n';
  out_.append(has_items_.size() * 2, ' ');
}

void writer::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_items_.empty()) {
    if (has_items_.back())
      out_ += ',';
    has_items_.back() = true;
    newline();
  }
}

writer& writer::begin_object() {
  before_value();
  out_ += '{';
  has_items_.push_back(false);
  return *this;
}

writer& writer::end_object() {
  bool had_items = has_items_.back();
  has_items_.pop_back();
  if (had_items)
    newline();
  out_ += '}';
  return *this;
}

writer& writer::begin_array() {
  before_value();
  out_ += '[';
  has_items_.push_back(false);
  return *this;
}

writer& writer::end_array() {
  bool had_items = has_items_.back();
  has_items_.pop_back();
  if (had_items)
    newline();
  out_ += ']';
  return *this;
}

writer& writer::key(std::string_view name) {
  before_value();
  out_ += '"';
  out_ += escape(name);
  out_ += pretty_ ? "\": " : "\":";
  after_key_ = true;
  return *this;
}

writer& writer::value(std::string_view text) {
  before_value();
  out_ += '"';
  out_ += escape(text);
  out_ += '"';
  return *this;
}

writer& writer::value(std::int64_t number) {
  before_value();
  out_ += std::to_string(number);
  return *this;
}

writer& writer::value(std::uint64_t number) {
  before_value();
  out_ += std::to_string(number);
  return *this;
}

writer& writer::value(double number) {
  before_value();
  if (!std::isfinite(number)) {
    out_ += "null"; // JSON has no NaN or infinity
    return *this;
  }
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, number);
  out_.append(buffer, ec == std::errc{} ? end : buffer);
  return *this;
}

writer& writer::value(bool flag) {
  before_value();
  out_ += flag ? "true" : "false";
  return *this;
}

writer& writer::null() {
  before_value();
  out_ += "null";
  return *this;
}

writer& writer::raw(std::string_view json) {
  before_value();
  out_ += json;
  return *this;
}

} // namespace dcmstreams::json
