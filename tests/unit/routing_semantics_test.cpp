// Each sentence of docs/routing.md, as a test named after its number.

#include "pipeline/routing/routing.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

namespace {

routing_table rules(const std::string& json,
                    const std::map<std::string, destination_config>& destinations = {}) {
  auto table = parse_routing(json, "routing.json", destinations);
  EXPECT_TRUE(table) << table.error().message;
  return table ? *table : routing_table{};
}

std::vector<std::string> targets(const routing_table& table, const route_context& job) {
  sending_config sending;
  sending.default_host = "10.9.9.9";
  sending.default_port = 4242;
  std::vector<std::string> names;
  for (auto& send : evaluate_routing(table, job, "NODE", sending))
    names.push_back(send.target.called_ae + "@" + send.target.host + ":" +
                    std::to_string(send.target.port));
  return names;
}

const route_context ct_success{"SMOOTH", "CT1", "10.1.1.1", "success"};

std::string dest(const std::string& ae, int port = 104) {
  return R"({"IP": "1.1.1.1", "PORT": )" + std::to_string(port) + R"(, "AETitleTo": ")" + ae +
         R"("})";
}

} // namespace

TEST(routing_semantics, R1_rules_apply_in_file_order) {
  auto table = rules(R"({"routing": [{"send": [{"success": )" + dest("FIRST") +
                     R"(}]}, {"send": [{"success": )" + dest("SECOND") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success),
            (std::vector<std::string>{"FIRST@1.1.1.1:104", "SECOND@1.1.1.1:104"}));
}

TEST(routing_semantics, R2_each_present_pattern_must_match) {
  auto table = rules(R"({"routing": [
    {"AETitleIn": "SMOOTH", "AETitleFrom": "MR", "send": [{"success": )" +
                     dest("BOTH") + R"(}]},
    {"AETitleIn": "SMOOTH", "send": [{"success": )" +
                     dest("IN") + R"(}]},
    {"AETitleFrom": "CT1", "send": [{"success": )" +
                     dest("FROM") + R"(}]},
    {"send": [{"success": )" +
                     dest("ANY") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success),
            (std::vector<std::string>{"IN@1.1.1.1:104", "FROM@1.1.1.1:104", "ANY@1.1.1.1:104"}));
}

TEST(routing_semantics, R3_patterns_are_case_insensitive_searches) {
  auto table =
      rules(R"({"routing": [{"AETitleIn": "moot", "send": [{"SUCC": )" + dest("A") +
            R"(}]}, {"AETitleIn": "^MOOT$", "send": [{"success": )" + dest("B") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success), (std::vector<std::string>{"A@1.1.1.1:104"}));
}

TEST(routing_semantics, R4_status_0_disables_a_rule) {
  auto table = rules(R"({"routing": [{"status": 0, "send": [{"success": )" + dest("OFF") +
                     R"(}]}, {"status": "0", "send": [{"success": )" + dest("OFF2") +
                     R"(}]}, {"status": 1, "send": [{"success": )" + dest("ON") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success), (std::vector<std::string>{"ON@1.1.1.1:104"}));
}

TEST(routing_semantics, R5_the_first_matching_key_in_document_order_selects) {
  auto table = rules(R"({"routing": [{"send": [{"succ": )" + dest("SPECIFIC") + R"(, ".*": )" +
                     dest("CATCHALL") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success), (std::vector<std::string>{"SPECIFIC@1.1.1.1:104"}));
  route_context failed = ct_success;
  failed.outcome = "failed";
  EXPECT_EQ(targets(table, failed), (std::vector<std::string>{"CATCHALL@1.1.1.1:104"}));
  route_context partial = ct_success;
  partial.outcome = "partial";
  EXPECT_EQ(targets(table, partial), (std::vector<std::string>{"CATCHALL@1.1.1.1:104"}));
  // The other order: the catch-all wins for everything.
  auto reversed = rules(R"({"routing": [{"send": [{".*": )" + dest("CATCHALL") + R"(, "succ": )" +
                        dest("SPECIFIC") + R"(}]}]})");
  EXPECT_EQ(targets(reversed, ct_success), (std::vector<std::string>{"CATCHALL@1.1.1.1:104"}));
}

TEST(routing_semantics, R6_several_maps_and_rules_give_several_destinations) {
  auto table = rules(R"({"routing": [{"send": [{"success": )" + dest("A") + R"(}, {"success": )" +
                     dest("B") + R"(}, {"fail": )" + dest("NOT") + R"(}]}]})");
  EXPECT_EQ(targets(table, ct_success),
            (std::vector<std::string>{"A@1.1.1.1:104", "B@1.1.1.1:104"}));
}

TEST(routing_semantics, R7_route_directory_chooses_output_or_input) {
  auto table =
      rules(R"({"routing": [{"send": [{"success": )" + dest("OUT") +
            R"(}]}, {"RouteDirectory": "INPUT", "send": [{"success": )" + dest("IN") + R"(}]}]})");
  auto sends = evaluate_routing(table, ct_success, "NODE", {});
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0].directory, "OUTPUT");
  EXPECT_EQ(sends[1].directory, "INPUT");
}

TEST(routing_semantics, R8_which_is_or_over_objects_and_over_attributes_within) {
  auto table = rules(R"({"routing": [{"send": [{"success": {"IP": "1.1.1.1", "PORT": 104,
    "AETitleTo": "X", "which": [{"0008,0060": "^MR$", "SeriesDescription": "t1"},
                                {"Modality": "^CT$"}]}}]}]})");
  auto sends = evaluate_routing(table, ct_success, "NODE", {});
  ASSERT_EQ(sends.size(), 1u);
  auto& which = sends[0].which;
  EXPECT_TRUE(passes_which(which, {{"0008,0060", "MR"}, {"SeriesDescription", "AX T1 post"}}));
  EXPECT_FALSE(passes_which(which, {{"0008,0060", "MR"}, {"SeriesDescription", "T2"}}));
  EXPECT_TRUE(passes_which(which, {{"Modality", "CT"}}));
  EXPECT_FALSE(passes_which(which, {{"Modality", "PT"}}));
  EXPECT_FALSE(passes_which(which, {})) << "an absent attribute is empty";
  EXPECT_TRUE(passes_which({}, {})) << "no which: every file";
}

TEST(routing_semantics, R9_break_in_a_rule_or_a_selected_destination_stops_later_rules) {
  auto rule_break = rules(R"({"routing": [{"AETitleIn": "NOPE", "break": 1, "send": [{".*": )" +
                          dest("A") + R"(}]}, {"break": 1, "send": [{".*": )" + dest("B") +
                          R"(}]}, {"send": [{".*": )" + dest("C") + R"(}]}]})");
  EXPECT_EQ(targets(rule_break, ct_success), (std::vector<std::string>{"B@1.1.1.1:104"}))
      << "a rule that does not match does not break";
  auto destination_break = rules(R"({"routing": [{"send": [{"success": {"IP": "1.1.1.1",
    "PORT": 104, "AETitleTo": "A", "break": 1}, "fail": )" +
                                 dest("F") + R"(}]}, {"send": [{".*": )" + dest("C") + R"(}]}]})");
  EXPECT_EQ(targets(destination_break, ct_success), (std::vector<std::string>{"A@1.1.1.1:104"}));
  route_context failed = ct_success;
  failed.outcome = "failed";
  EXPECT_EQ(targets(destination_break, failed),
            (std::vector<std::string>{"F@1.1.1.1:104", "C@1.1.1.1:104"}))
      << "the breaking destination was not selected";
}

TEST(routing_semantics, R10_named_destinations_and_the_default_calling_title) {
  std::map<std::string, destination_config> named;
  named["pacs"] = {"pacs", "10.0.0.9", 4242, "ORTHANC", "NODE1", 4, "jpeg-ls", "", {}, {}};
  auto table =
      rules(R"({"routing": [{"send": [{"success": "pacs"}, {"success": )" + dest("X") + R"(}]}]})",
            named);
  auto sends = evaluate_routing(table, ct_success, "DCMSTREAMS", {});
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0].target.name, "pacs");
  EXPECT_EQ(sends[0].target.host, "10.0.0.9");
  EXPECT_EQ(sends[0].target.called_ae, "ORTHANC");
  EXPECT_EQ(sends[0].target.calling_ae, "NODE1");
  EXPECT_EQ(sends[0].target.associations, 4);
  EXPECT_EQ(sends[0].target.transfer_syntax, "jpeg-ls");
  EXPECT_EQ(sends[1].target.calling_ae, "DCMSTREAMS") << "AETitleSender defaults to ae_title";
  EXPECT_EQ(sends[1].target.name, "X@1.1.1.1:104");
}

TEST(routing_semantics, R11_placeholders) {
  auto table = rules(R"({"routing": [{"send": [{"success": {"IP": "$me", "PORT": "$port",
    "AETitleTo": "ME"}}, {"success": {"IP": "$caller", "PORT": 11112, "AETitleTo": "BACK"}}]}]})");
  EXPECT_EQ(targets(table, ct_success),
            (std::vector<std::string>{"ME@10.9.9.9:4242", "BACK@10.1.1.1:11112"}));
}

TEST(routing_semantics, R13_mistakes_are_refused_whole_with_their_place) {
  auto table = parse_routing(R"({"routing": [{"send": [{"success": )" + dest("OK") +
                                 R"(}]}, {"send": [{"success": {"IP": "1.1.1.1", "PORT": 0,
    "AETitleTo": "BAD"}}]}]})",
                             "routing.json", {});
  ASSERT_FALSE(table) << "one bad rule refuses the file";
  EXPECT_NE(table.error().message.find("routing[1].send[0].\"success\".PORT"), std::string::npos)
      << table.error().message;
  auto syntax =
      parse_routing("{\"routing\": [\n  {\"name\": \"x\" \"send\": []}\n]}", "routing.json", {});
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().message.rfind("routing.json:2:", 0), 0u) << syntax.error().message;
}
