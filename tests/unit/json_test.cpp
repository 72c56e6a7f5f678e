#include "pipeline/foundation/json.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(json_syntax, valid_documents_have_no_error) {
  for (const char* text : {"{}", "[]", "{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\"]}",
                           " \n {\"nested\": {\"deep\": [[[]]]}} "})
    EXPECT_FALSE(json::find_syntax_error(text)) << text;
}

TEST(json_syntax, errors_are_located) {
  struct case_t {
    const char* text;
    std::size_t line, column;
    const char* message;
  };
  for (auto c :
       {case_t{"{\"a\": 1,}", 1, 9, "comma before '}'"},
        case_t{"{\n\"a\" 1}", 2, 5, "':' is expected"}, case_t{"[1, 2", 1, 6, "unexpected end"},
        case_t{"{'a': 1}", 1, 2, "double quotes"}, case_t{"{\"a\": tru}", 1, 7, "unknown word"},
        case_t{"{\"a\": 01}", 1, 8, "',' or '}'"},
        case_t{"{\"a\": \"x\ny\"}", 1, 9, "control character"},
        case_t{"{} x", 1, 4, "after the end"}}) {
    auto error = json::find_syntax_error(c.text);
    ASSERT_TRUE(error) << c.text;
    EXPECT_EQ(error->line, c.line) << c.text;
    EXPECT_EQ(error->column, c.column) << c.text;
    EXPECT_NE(error->message.find(c.message), std::string::npos) << error->message;
  }
}

TEST(json_document, parse_failure_names_source_and_place) {
  auto doc = json::document::parse("{\n  \"x\": [1,,2]\n}", "routing.json");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().message.rfind("routing.json:2:", 0), 0u) << doc.error().message;
}

TEST(json_writer, writes_escaped_compact_and_pretty_json) {
  json::writer compact;
  compact.begin_object()
      .key("name")
      .value("a \"quoted\"\nline")
      .key("n")
      .value(std::int64_t{-3})
      .key("list")
      .begin_array()
      .value(1.5)
      .value(true)
      .null()
      .end_array()
      .end_object();
  EXPECT_EQ(compact.str(), R"({"name":"a \"quoted\"\nline","n":-3,"list":[1.5,true,null]})");
  json::writer pretty{true};
  pretty.begin_object().key("a").value(1).key("b").begin_array().end_array().end_object();
  EXPECT_EQ(pretty.str(), "{\n  \"a\": 1,\n  \"b\": []\n}");
  // What the writer writes, the parser reads.
  EXPECT_TRUE(json::document::parse(compact.str(), "x"));
}
