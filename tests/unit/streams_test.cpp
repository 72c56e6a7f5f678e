#include "pipeline/foundation/http_url.hpp"
#include "streams/registry.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <thread>

using namespace dcmstreams;
using dcmstreams::fixtures::temp_dir;
using dcmstreams::fixtures::write_file;

namespace {

std::string problems_of(const streams::registry_snapshot& snapshot) {
  std::string all;
  for (auto& p : snapshot.problems)
    all += p + "\n";
  return all;
}

} // namespace

TEST(stream, reads_the_old_appliance_keys_as_they_were) {
  temp_dir dir;
  write_file(dir / "bucket" / "info.json", R"({"name": "Bucket", "description": "old",
    "version": 2, "AETitle": "BUCKET", "enabled": 1, "license": "GPL"})");
  write_file(dir / "bucket" / "work.sh", "#!/bin/sh\n");
  ::chmod((dir / "bucket" / "work.sh").c_str(), 0755);
  auto stream = streams::load_stream(dir / "bucket");
  ASSERT_TRUE(stream) << stream.error().message;
  EXPECT_EQ(stream->name, "Bucket");
  EXPECT_EQ(stream->version, "2");
  EXPECT_EQ(stream->ae_title, "BUCKET");
  EXPECT_TRUE(stream->enabled);
  EXPECT_EQ(stream->license, "GPL");
  ASSERT_EQ(stream->command.size(), 1u);
  EXPECT_EQ(std::filesystem::path(stream->command[0]).filename(), "work.sh");
  EXPECT_TRUE(std::filesystem::path(stream->command[0]).is_absolute());
}

TEST(stream, enabled_zero_and_false_disable) {
  temp_dir dir;
  for (auto [name, flag] : {std::pair{"a", "0"}, {"b", "false"}}) {
    write_file(dir / name / "info.json", std::string(R"({"AETitle": "X", "command": ["true"],
      "enabled": )") + flag + "}");
    auto stream = streams::load_stream(dir / name);
    ASSERT_TRUE(stream) << stream.error().message;
    EXPECT_FALSE(stream->enabled);
  }
}

TEST(stream, new_keys_are_read) {
  temp_dir dir;
  write_file(dir / "s" / "info.json", R"({"AETitle": "S",
    "pipeline": [{"kernel": "gaussian", "sigma_mm": 1.5}, {"kernel": "mip", "slab_mm": 10}],
    "concurrency": 2, "timeout_s": 600, "quiet_period_s": 0.5, "group_by": "series",
    "accept": {"Modality": "CT|MR", "0008,103e": "^AX"}})");
  auto stream = streams::load_stream(dir / "s");
  ASSERT_TRUE(stream) << stream.error().message;
  ASSERT_EQ(stream->pipeline.size(), 2u);
  EXPECT_EQ(stream->pipeline[0].kernel, "gaussian");
  EXPECT_DOUBLE_EQ(stream->pipeline[0].sigma_mm, 1.5);
  EXPECT_DOUBLE_EQ(stream->pipeline[1].slab_mm, 10);
  EXPECT_EQ(stream->concurrency, 2);
  EXPECT_DOUBLE_EQ(stream->timeout_s, 600);
  EXPECT_DOUBLE_EQ(*stream->quiet_period_s, 0.5);
  EXPECT_EQ(stream->group_by, streams::grouping::series);
  ASSERT_EQ(stream->accept.size(), 2u);
  EXPECT_EQ(stream->accept[1].attribute, "0008,103e");
}

TEST(stream, notify_targets_are_read_and_bad_ones_explained) {
  temp_dir dir;
  write_file(dir / "s" / "info.json", R"({"AETitle": "S", "command": ["/bin/true"],
    "notify": [{"url": "http://ris.example:8080/hooks?x=1", "on": ["success", "failed"]},
               {"url": "http://[::1]/hook"}]})");
  auto stream = streams::load_stream(dir / "s");
  ASSERT_TRUE(stream) << stream.error().message;
  ASSERT_EQ(stream->notify.size(), 2u);
  EXPECT_EQ(stream->notify[0].on, (std::vector<std::string>{"success", "failed"}));
  EXPECT_EQ(stream->notify[1].on, std::vector<std::string>{"failed"}) << "failures by default";
  auto url = parse_http_url(stream->notify[0].url);
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "ris.example");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->target, "/hooks?x=1");
  auto secure = parse_http_url("https://ris.example/hook");
  ASSERT_TRUE(secure);
  EXPECT_TRUE(secure->tls);
  EXPECT_EQ(secure->port, 443);
  EXPECT_EQ(parse_http_url("https://ris.example:8443/")->port, 8443);
  EXPECT_FALSE(url->tls);
  auto v6 = parse_http_url(stream->notify[1].url);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 80);

  write_file(dir / "bad" / "info.json", R"({"AETitle": "B", "command": ["/bin/true"],
    "notify": [{"url": "http://ris.example/hook", "ca": "/etc/hosts"}, {"url": "ftp://x"}, {"on": ["success"]},
               {"url": "http://ris.example:99999/"}, {"url": "http://a/", "on": ["done"]}, 3,
               {"url": "https://ris.example/hook", "ca": "/nowhere/ca.pem"}]})");
  auto bad = streams::load_stream(dir / "bad");
  ASSERT_FALSE(bad);
  auto& m = bad.error().message;
  EXPECT_NE(m.find("notify[0].ca: is for https:// URLs only"), std::string::npos) << m;
  EXPECT_NE(m.find("notify[1].url: \"ftp://x\" is not an http:// or https:// URL"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("notify[6].ca: \"/nowhere/ca.pem\" is not a file"), std::string::npos) << m;
  EXPECT_NE(m.find("notify[2].url: is required"), std::string::npos) << m;
  EXPECT_NE(m.find("notify[3].url: \"http://ris.example:99999/\" has no valid port"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("notify[4].on: lists \"done\""), std::string::npos) << m;
  EXPECT_NE(m.find("notify[5]: must be"), std::string::npos) << m;
}

TEST(stream, complete_when_is_read_and_a_bad_pattern_explained) {
  temp_dir dir;
  write_file(dir / "s" / "info.json", R"({"AETitle": "S", "command": ["/bin/true"],
    "complete_when": {"series": 3, "modality": "CT|PT", "min_instances": 200}})");
  auto stream = streams::load_stream(dir / "s");
  ASSERT_TRUE(stream) << stream.error().message;
  ASSERT_TRUE(stream->complete_when);
  EXPECT_EQ(stream->complete_when->series, 3);
  EXPECT_EQ(stream->complete_when->modality, "CT|PT");
  EXPECT_EQ(stream->complete_when->min_instances, 200);
  write_file(dir / "bad" / "info.json", R"({"AETitle": "B", "command": ["/bin/true"],
    "complete_when": {"series": 0, "series_description": "(AX", "instances": 3}})");
  auto bad = streams::load_stream(dir / "bad");
  ASSERT_FALSE(bad);
  auto& m = bad.error().message;
  EXPECT_NE(m.find("complete_when.series"), std::string::npos) << m;
  EXPECT_NE(m.find("complete_when.series_description: \"(AX\" is not a regular expression"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("complete_when.instances"), std::string::npos) << m;

  write_file(dir / "late" / "info.json", R"({"AETitle": "L", "command": ["/bin/true"],
    "late": "append_and_rerun"})");
  auto late = streams::load_stream(dir / "late");
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->late, "append_and_rerun");
  write_file(dir / "late2" / "info.json", R"({"AETitle": "L", "command": ["/bin/true"],
    "late": "merge"})");
  write_file(dir / "late3" / "info.json", R"({"AETitle": "L", "command": ["/bin/true"],
    "group_by": "series", "late": "ignore"})");
  auto unknown = streams::load_stream(dir / "late2");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("late: must be \"new_job\", \"ignore\" or"),
            std::string::npos)
      << unknown.error().message;
  auto by_series = streams::load_stream(dir / "late3");
  ASSERT_FALSE(by_series);
  EXPECT_NE(by_series.error().message.find("late: works with group_by \"study\" only"),
            std::string::npos)
      << by_series.error().message;
}

TEST(stream, problems_name_file_key_and_fix) {
  temp_dir dir;
  write_file(dir / "bad" / "info.json", R"({"AETitle": "WAY_TOO_LONG_AE_TITLE",
    "command": ["x"], "pipeline": [{"kernel": "blur"}], "group_by": "patient",
    "accept": {"Modality": "(CT"}, "concurrency": 0})");
  auto stream = streams::load_stream(dir / "bad");
  ASSERT_FALSE(stream);
  auto& m = stream.error().message;
  auto file = (dir / "bad" / "info.json").string();
  EXPECT_NE(m.find(file + ": AETitle: an AE title has at most 16 characters"), std::string::npos)
      << m;
  EXPECT_NE(m.find("pipeline[0].kernel: unknown kernel \"blur\"; known: gaussian"),
            std::string::npos);
  EXPECT_NE(m.find("has both \"command\" and \"pipeline\""), std::string::npos);
  EXPECT_NE(m.find("group_by: must be \"study\" or \"series\""), std::string::npos);
  EXPECT_NE(m.find("accept.Modality: \"(CT\" is not a valid regular expression"),
            std::string::npos);
  EXPECT_NE(m.find("concurrency: must be between 1 and 64"), std::string::npos);
}

TEST(stream, missing_ae_title_and_missing_work_are_explained) {
  temp_dir dir;
  write_file(dir / "empty" / "info.json", "{}");
  auto stream = streams::load_stream(dir / "empty");
  ASSERT_FALSE(stream);
  EXPECT_NE(stream.error().message.find("AETitle: is missing"), std::string::npos);
  EXPECT_NE(stream.error().message.find("needs \"command\""), std::string::npos);
}

TEST(stream, a_command_that_is_not_executable_is_refused) {
  temp_dir dir;
  write_file(dir / "s" / "info.json", R"({"AETitle": "S", "command": ["./missing.sh"]})");
  auto stream = streams::load_stream(dir / "s");
  ASSERT_FALSE(stream);
  EXPECT_NE(stream.error().message.find("missing.sh is not an executable file"), std::string::npos);
}

TEST(registry, a_bad_stream_is_skipped_and_the_others_load) {
  temp_dir dir;
  fixtures::write_stream(dir.path(), "good", "GOOD");
  write_file(dir / "broken" / "info.json", "{\"AETitle\": ");
  auto snapshot = streams::load_registry(dir.path());
  ASSERT_EQ(snapshot.streams.size(), 1u);
  EXPECT_EQ(snapshot.streams[0].folder_name, "good");
  ASSERT_EQ(snapshot.problems.size(), 1u);
  EXPECT_NE(snapshot.problems[0].find("broken/info.json:1:"), std::string::npos)
      << snapshot.problems[0];
  EXPECT_NE(snapshot.problems[0].find("stream broken skipped"), std::string::npos);
  EXPECT_TRUE(snapshot.find_by_ae("GOOD"));
  EXPECT_FALSE(snapshot.find_by_ae("BROKEN"));
}

TEST(registry, two_streams_with_one_ae_title_name_both_folders) {
  temp_dir dir;
  fixtures::write_stream(dir.path(), "first", "SAME");
  fixtures::write_stream(dir.path(), "second", "SAME");
  fixtures::write_stream(dir.path(), "third", "OTHER");
  auto snapshot = streams::load_registry(dir.path());
  EXPECT_FALSE(snapshot.find_by_ae("SAME"));
  EXPECT_TRUE(snapshot.find_by_ae("OTHER"));
  auto problems = problems_of(snapshot);
  EXPECT_NE(problems.find((dir / "first").string()), std::string::npos) << problems;
  EXPECT_NE(problems.find((dir / "second").string()), std::string::npos) << problems;
  EXPECT_NE(problems.find("\"SAME\""), std::string::npos);
}

TEST(registry, a_missing_folder_is_a_problem_not_a_crash) {
  auto snapshot = streams::load_registry("/nonexistent/streams");
  EXPECT_TRUE(snapshot.streams.empty());
  ASSERT_EQ(snapshot.problems.size(), 1u);
  EXPECT_NE(snapshot.problems[0].find("--streams DIR"), std::string::npos);
}

TEST(registry, the_fingerprint_changes_when_a_stream_changes) {
  temp_dir dir;
  fixtures::write_stream(dir.path(), "a", "A");
  auto before = streams::registry_fingerprint(dir.path());
  EXPECT_EQ(before, streams::registry_fingerprint(dir.path()));
  fixtures::write_stream(dir.path(), "b", "B");
  auto added = streams::registry_fingerprint(dir.path());
  EXPECT_NE(before, added);
  // A rewrite of the same size must still count: the time changes.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  fixtures::write_stream(dir.path(), "b", "C");
  EXPECT_NE(added, streams::registry_fingerprint(dir.path()));
}

TEST(registry, the_bundled_streams_load) {
  auto snapshot = streams::load_registry(fixtures::source_dir() / "streams" / "library");
  EXPECT_TRUE(snapshot.problems.empty()) << problems_of(snapshot);
  EXPECT_GE(snapshot.streams.size(), 2u);
}
