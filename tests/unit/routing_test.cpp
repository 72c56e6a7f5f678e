#include "pipeline/routing/routing.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(routing_file, the_old_grammar_parses) {
  std::map<std::string, destination_config> destinations;
  destinations["pacs"] = {"pacs", "10.0.0.9", 4242, "ORTHANC", "NODE", 2, "", "", {}};
  auto table = parse_routing(R"({"routing": [
    {"name": "results to PACS", "AETitleIn": "SMOOTH|MIP", "AETitleFrom": ".*", "status": 1,
     "RouteDirectory": "OUTPUT", "break": 1,
     "send": [{"success": "pacs", "fail": {"IP": "$caller", "PORT": "$port",
               "AETitleSender": "NODE", "AETitleTo": "WS1", "which": [{"0008,103e": "T1"}]}}]},
    {"name": "off", "status": "0", "send": []}]})",
                             "routing.json", destinations);
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_EQ(table->rules.size(), 2u);
  auto& rule = table->rules[0];
  EXPECT_EQ(rule.called_ae_pattern, "SMOOTH|MIP");
  EXPECT_TRUE(rule.stop);
  ASSERT_EQ(rule.send.size(), 1u);
  ASSERT_EQ(rule.send[0].size(), 2u);
  EXPECT_EQ(rule.send[0][0].outcome_pattern, "success") << "document order is kept";
  EXPECT_EQ(rule.send[0][0].destination.named, "pacs");
  EXPECT_EQ(rule.send[0][0].destination.port, 4242);
  EXPECT_TRUE(rule.send[0][1].destination.default_port);
  EXPECT_EQ(rule.send[0][1].destination.which.at(0).at(0).attribute, "0008,103e");
  EXPECT_FALSE(table->rules[1].enabled);
}

TEST(routing_file, errors_name_their_place) {
  auto table = parse_routing(R"({"routing": [{"send": [{"success": {"IP": "1.2.3.4",
    "PORT": 99999, "AETitleTo": "X", "colour": 1}}, {"(bad": "nowhere"}]}]})",
                             "routing.json", {});
  ASSERT_FALSE(table);
  auto& m = table.error().message;
  EXPECT_NE(m.find("routing.json: routing[0].send[0].\"success\".PORT: must be a port number"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("routing[0].send[0].\"success\".colour: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("routing[0].send[1].\"(bad\": \"(bad\" is not a valid regular expression"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("names destination \"nowhere\", which is not in the node config"),
            std::string::npos)
      << m;
}

TEST(routing_file, syntax_errors_have_a_line) {
  auto table = parse_routing("{\"routing\": [\n{\"name\": \"x\"\n]}", "routing.json", {});
  ASSERT_FALSE(table);
  EXPECT_EQ(table.error().message.rfind("routing.json:3:", 0), 0u) << table.error().message;
}

TEST(routing_file, back_references_and_overlong_patterns_are_refused_by_name) {
  // Fuzzing found that libstdc++'s regex compiler overflows on a
  // back-reference of many digits; no pattern the node matches needs one.
  auto backreference =
      parse_routing(R"({"routing": [{"AETitleIn": "CT\\99999999999999999999", "send": []}]})",
                    "routing.json", {});
  ASSERT_FALSE(backreference);
  EXPECT_NE(backreference.error().message.find("routing[0].AETitleIn"), std::string::npos)
      << backreference.error().message;
  EXPECT_NE(backreference.error().message.find("back-references"), std::string::npos)
      << backreference.error().message;
  auto long_pattern = parse_routing(R"({"routing": [{"AETitleFrom": ")" + std::string(600, 'A') +
                                        R"(", "send": []}]})",
                                    "routing.json", {});
  ASSERT_FALSE(long_pattern);
  EXPECT_NE(long_pattern.error().message.find("longer than 512 characters"), std::string::npos)
      << long_pattern.error().message;
  auto count =
      parse_routing(R"({"routing": [{"AETitleFrom": "CT|k{66666666666666666666}", "send": []}]})",
                    "routing.json", {});
  ASSERT_FALSE(count);
  EXPECT_NE(count.error().message.find("repetition counts above 9999"), std::string::npos)
      << count.error().message;
  EXPECT_TRUE(parse_routing(R"({"routing": [{"AETitleFrom": "^CT[0-9]{2,16}$", "send": []}]})",
                            "routing.json", {}));
  // Counts on counts multiply the automaton libstdc++ builds (a regex bomb).
  auto bomb =
      parse_routing(R"({"routing": [{"AETitleFrom": "T|k?{24}?{23}?{23}?{23}", "send": []}]})",
                    "routing.json", {});
  ASSERT_FALSE(bomb);
  EXPECT_NE(bomb.error().message.find("multiply to more than 10000"), std::string::npos)
      << bomb.error().message;
  // An escaped backslash before a digit is no back-reference.
  EXPECT_TRUE(
      parse_routing(R"({"routing": [{"AETitleIn": "CT\\\\1", "send": []}]})", "routing.json", {}));
}
