#include "pipeline/foundation/json.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(json_syntax, valid_documents_parse) {
  for (const char* text : {"{}", "[]", "{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\"]}",
                           " \n {\"nested\": {\"deep\": [[[]]]}} "})
    EXPECT_TRUE(json::parse(text, "t")) << text;
}

TEST(json_syntax, errors_are_located) {
  struct case_t {
    const char* text;
    std::size_t line, column;
    const char* message;
  };
  // Where the document stops being JSON, and nlohmann-json's words for why.
  for (auto c : {case_t{"{\"a\": 1,}", 1, 9, "unexpected '}'; expected string literal"},
                 case_t{"{\n\"a\" 1}", 2, 5, "expected ':'"},
                 case_t{"[1, 2", 1, 6, "unexpected end of input"},
                 case_t{"{'a': 1}", 1, 2, "invalid literal"},
                 case_t{"{\"a\": tru}", 1, 10, "invalid literal"},
                 case_t{"{\"a\": 01}", 1, 8, "unexpected number literal"},
                 case_t{"{\"a\": \"x\ny\"}", 1, 9, "control character U+000A"},
                 case_t{"{} x", 1, 4, "expected end of input"}}) {
    auto parsed = json::parse(c.text, "f.json");
    ASSERT_FALSE(parsed) << c.text;
    auto place = "f.json:" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": ";
    EXPECT_EQ(parsed.error().message.rfind(place, 0), 0u) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << parsed.error().message;
  }
}

TEST(json_document, parse_failure_names_source_and_place) {
  auto doc = json::parse("{\n  \"x\": [1,,2]\n}", "routing.json");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().message.rfind("routing.json:2:", 0), 0u) << doc.error().message;
}

TEST(json_writer, writes_escaped_compact_and_pretty_json) {
  json::value compact = {{"name", "a \"quoted\"\nline"},
                         {"n", -3},
                         {"list", json::value::array({1.5, true, nullptr})}};
  EXPECT_EQ(json::dump(compact), R"({"name":"a \"quoted\"\nline","n":-3,"list":[1.5,true,null]})");
  json::value pretty = {{"a", 1}, {"b", json::value::array()}};
  EXPECT_EQ(json::dump(pretty, true), "{\n  \"a\": 1,\n  \"b\": []\n}");
  // What the writer writes, the parser reads.
  EXPECT_TRUE(json::parse(json::dump(compact), "x"));
}

TEST(json_writer, bytes_that_are_not_utf8_become_replacement_characters) {
  // A Latin-1 patient name from a data set must not stop a job's info.json.
  json::value name = {{"name", std::string("M\xfcller")}};
  EXPECT_EQ(json::dump(name), "{\"name\":\"M\xef\xbf\xbdller\"}");
}

TEST(json_reader, key_paths_types_and_suggestions) {
  auto doc = json::parse(R"({"port": "x", "ae_tilte": "A", "n": 70000, "flag": 1})", "n.json");
  ASSERT_TRUE(doc);
  json::problems problems{"n.json", {}};
  json::object_reader reader{*doc, "dicom", problems};
  EXPECT_FALSE(reader.get_integer("port", 1, 65535));
  EXPECT_FALSE(reader.get_integer("n", 1, 65535));
  EXPECT_EQ(reader.get_flag("flag"), true);
  reader.reject_unknown_keys({"port", "ae_title", "n", "flag"});
  auto report = problems.report();
  EXPECT_NE(report.find("n.json: dicom.port: must be a whole number, not a string"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("dicom.n: must be between 1 and 65535, not 70000"), std::string::npos)
      << report;
  EXPECT_NE(report.find("dicom.ae_tilte: unknown key; did you mean \"ae_title\"?"),
            std::string::npos)
      << report;
}
