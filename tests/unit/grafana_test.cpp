// The Grafana dashboard only queries metrics the node exports, and every
// query is PromQL that Prometheus accepts.

#include "actors/node_metrics.hpp"
#include "metrics/process_metrics.hpp"
#include "metrics/registry.hpp"
#include "pipeline/foundation/json.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;

namespace {

std::vector<std::string> dashboard_queries() {
  auto path = source_dir() / "metrics" / "grafana" / "dcmstreams.json";
  auto dashboard = json::load_file(path);
  EXPECT_TRUE(dashboard) << path;
  std::vector<std::string> queries;
  if (!dashboard)
    return queries;
  for (auto& panel : dashboard->at("panels"))
    for (auto& target : panel.at("targets"))
      queries.push_back(target.at("expr").get<std::string>());
  return queries;
}

std::set<std::string> exported_names() {
  metrics::registry registry;
  node_metrics node{registry};
  metrics::register_process_metrics(registry);
  std::set<std::string> names;
  static const std::regex type_line{R"(^# TYPE (\S+) (\S+)$)"};
  auto text = registry.expose();
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (!std::regex_match(line, match, type_line))
      continue;
    names.insert(match[1]);
    if (match[2] == "histogram")
      for (auto suffix : {"_bucket", "_sum", "_count"})
        names.insert(match[1].str() + suffix);
  }
  return names;
}

} // namespace

TEST(grafana, every_metric_the_dashboard_queries_is_exported) {
  auto queries = dashboard_queries();
  auto exported = exported_names();
  ASSERT_GE(queries.size(), 20u);
  static const std::regex metric_name{R"(\b(?:dcmstreams|process)_[a-z_]+)"};
  std::set<std::string> used;
  for (auto& query : queries)
    for (std::sregex_iterator it{query.begin(), query.end(), metric_name}, end; it != end; ++it) {
      used.insert(it->str());
      EXPECT_TRUE(exported.count(it->str())) << it->str() << " in " << query;
    }
  // The dashboard covers what issue #6 asks an operator to see.
  for (auto wanted :
       {"dcmstreams_instances_received_total", "dcmstreams_bytes_received_total",
        "dcmstreams_stream_queue_depth", "dcmstreams_job_duration_seconds_bucket",
        "dcmstreams_sends_total", "dcmstreams_send_retries_total", "dcmstreams_disk_free_bytes",
        "dcmstreams_actor_restarts_total", "dcmstreams_listener_restarts_total"})
    EXPECT_TRUE(used.count(wanted)) << wanted << " is not on the dashboard";
}

TEST(grafana, every_query_is_valid_promql) {
  // promtool checks expressions in rule files; Grafana's variables become
  // what Grafana would put in their place.
  temp_dir scratch;
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (auto query : dashboard_queries()) {
    for (auto [variable, value] :
         {std::pair{"$__rate_interval", "5m"}, {"$instance", ".*"}, {"$job", ".*"}})
      for (std::size_t at; (at = query.find(variable)) != std::string::npos;)
        query.replace(at, std::string(variable).size(), value);
    std::string quoted;
    for (char c : query)
      quoted += c == '\'' ? std::string("''") : std::string(1, c);
    rules += "      - record: dashboard:query" + std::to_string(++n) + "\n        expr: '" +
             quoted + "'\n";
  }
  write_file(scratch / "rules.yml", rules);
  auto checked = run({"promtool", "check", "rules", (scratch / "rules.yml").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output << rules;
  EXPECT_NE(checked.output.find("SUCCESS: " + std::to_string(n) + " rules found"),
            std::string::npos)
      << checked.output;
}

TEST(operations_doc, every_exported_metric_is_in_the_table) {
  auto doc = read_file(source_dir() / "docs" / "operations.md");
  auto exported = exported_names();
  ASSERT_GE(exported.size(), 30u);
  for (auto& name : exported) {
    bool derived = false; // histogram series are documented under the family's name
    for (std::string suffix : {"_bucket", "_sum", "_count"})
      derived |= name.size() > suffix.size() &&
                 name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                 exported.count(name.substr(0, name.size() - suffix.size()));
    if (!derived) {
      EXPECT_NE(doc.find("| `" + name + "` |"), std::string::npos) << name;
    }
  }
}
