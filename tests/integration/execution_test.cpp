// Streams running jobs end to end: storescu sends a study, the job runs a
// kernel chain or an external program, and OUTPUT, proc.json and the log
// show the result.

#include "pipeline/foundation/json.hpp"
#include "pipeline/imaging/kernels.hpp"
#include "pipeline/imaging/volume.hpp"

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"
#include "tests/support/reference_kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int send(const test_node& node, const std::string& ae, const fs::path& study) {
  return run({"storescu", "-aec", ae, "+sd", "+r", "127.0.0.1", std::to_string(node.port()),
              study.string()})
      .exit_code;
}

// A stream whose program logs "start <id>" and "end <id>" around a sleep.
void write_sleeper(const fs::path& streams, const std::string& name, const std::string& ae,
                   const fs::path& log, double seconds) {
  auto script = streams / name / "work.sh";
  write_file(script, "#!/bin/sh\n"
                     "echo \"start $DCMSTREAMS_JOB_ID $(date +%s.%N)\" >> " +
                         log.string() + "\nsleep " + std::to_string(seconds) +
                         "\necho \"end $DCMSTREAMS_JOB_ID $(date +%s.%N)\" >> " + log.string() +
                         "\n");
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  write_stream(streams, name, ae, "\"command\": [\"./work.sh\"]");
}

struct event {
  std::string what;
  int job;
  double time;
};

/// Each output file's pseudonymous identity: SOP Instance UID -> "study|patient|date".
std::map<std::string, std::string> identities(const fs::path& output) {
  std::map<std::string, std::string> found;
  for (auto& file : files_under(output))
    found[attribute_text(file, "SOPInstanceUID")] = attribute_text(file, "StudyInstanceUID") + "|" +
                                                    attribute_text(file, "PatientID") + "|" +
                                                    attribute_text(file, "StudyDate");
  return found;
}

std::vector<event> read_events(const fs::path& log) {
  std::vector<event> events;
  std::istringstream in{read_file(log)};
  event e;
  while (in >> e.what >> e.job >> e.time)
    events.push_back(e);
  return events;
}

/// Starts the node, sends the study to `ae` and waits for the one job it
/// makes, which must succeed; `job` is its folder.
void run_one_job(test_node& node, const std::string& ae, const fs::path& study, fs::path& job) {
  node.start();
  ASSERT_EQ(send(node, ae, study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  job = node.job_dirs().at(0);
  ASSERT_EQ(test_node::job_info(job, "state"), "success") << read_file(job / "processing.log");
}

} // namespace

TEST(execution, a_kernel_stream_writes_a_valid_series_with_the_reference_values) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "smooth", "SMOOTH",
               "\"pipeline\": [{\"kernel\": \"gaussian\", \"sigma_mm\": 2.0}]");
  fs::path job;
  ASSERT_NO_FATAL_FAILURE(run_one_job(node, "SMOOTH", synth_study(scratch / "study", 12, 48), job));
  EXPECT_EQ(read_file(job / "proc.json"), "[{\"success\":\"success\",\"message\":\"\"}]\n");
  auto outputs = files_under(job / "OUTPUT");
  ASSERT_EQ(outputs.size(), 12u);
  expect_valid_dicom(outputs);
  auto input = load_series(test_node::input_files(job));
  auto output = load_series(outputs);
  ASSERT_TRUE(input && output);
  auto expected = reference::gaussian(input->series[0].image, 2.0);
  auto& got = output->series[0].image;
  ASSERT_EQ(got.size(), expected.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst =
        std::max(worst, std::abs(got.value(got.voxels[i]) - expected.value(expected.voxels[i])));
  EXPECT_LE(worst, 1) << "voxels differ from the reference gaussian";
  EXPECT_NE(output->series[0].series_uid, input->series[0].series_uid);
}

TEST(execution, threshold_and_window_after_a_median_run_in_its_pass_and_give_the_same_series) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "bone", "BONE",
               R"("pipeline": [{"kernel": "median"},
                               {"kernel": "threshold", "lower": -200, "background": -1024},
                               {"kernel": "window", "center": 300, "width": 1500}])");
  fs::path job;
  ASSERT_NO_FATAL_FAILURE(run_one_job(node, "BONE", synth_study(scratch / "study", 10, 40), job));
  auto log = read_file(job / "processing.log");
  EXPECT_NE(log.find("median 3x3x3, threshold"), std::string::npos) << log;
  EXPECT_NE(log.find("(in one pass)"), std::string::npos) << log;
  auto outputs = files_under(job / "OUTPUT");
  ASSERT_EQ(outputs.size(), 10u);
  expect_valid_dicom(outputs);
  // The same steps one after the other, each over the whole volume.
  auto input = load_series(test_node::input_files(job));
  auto output = load_series(outputs);
  ASSERT_TRUE(input && output);
  kernel_step mask;
  mask.kernel = "threshold";
  mask.lower = -200;
  mask.background = -1024;
  auto expected = window(threshold(median3(input->series[0].image), mask), 300, 1500);
  auto& got = output->series[0].image;
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_EQ(got.voxels, expected.voxels);
  EXPECT_NE(std::count(got.voxels.begin(), got.voxels.end(), 0), 0) << "some voxels masked";
}

TEST(execution, a_stream_can_ask_for_the_recursive_gaussian) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "wide", "WIDE",
               R"("pipeline": [{"kernel": "gaussian", "sigma_mm": 8, "method": "recursive"}])");
  fs::path job;
  ASSERT_NO_FATAL_FAILURE(run_one_job(node, "WIDE", synth_study(scratch / "study", 8, 40), job));
  auto log = read_file(job / "processing.log");
  EXPECT_NE(log.find("gaussian sigma 8 mm, recursive done in"), std::string::npos) << log;
  auto outputs = files_under(job / "OUTPUT");
  ASSERT_EQ(outputs.size(), 8u);
  auto input = load_series(test_node::input_files(job));
  auto output = load_series(outputs);
  ASSERT_TRUE(input && output);
  auto expected = gaussian(input->series[0].image, 8, nullptr, gaussian_method::recursive);
  EXPECT_EQ(output->series[0].image.voxels, expected.voxels);
  EXPECT_NE(gaussian(input->series[0].image, 8).voxels, expected.voxels)
      << "the exact Gaussian differs, so the stream did not run it";
  auto description = attribute_text(outputs.at(0), "DerivationDescription");
  EXPECT_NE(description.find("recursive"), std::string::npos) << description;
}

TEST(execution, external_programs_that_fail_time_out_or_cannot_start_are_failed_jobs) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_file(node.streams_dir() / "fails" / "work.sh",
             "#!/bin/sh\necho reading \"$1\"; echo 'no tumour found' >&2; exit 3\n");
  fs::permissions(node.streams_dir() / "fails" / "work.sh", fs::perms::owner_all);
  write_stream(node.streams_dir(), "fails", "FAILS", "\"command\": [\"./work.sh\"]");
  write_stream(node.streams_dir(), "slow", "SLOW",
               "\"command\": [\"/bin/sh\", \"-c\", \"sleep 60\", \"sh\"], \"timeout_s\": 1");
  write_stream(node.streams_dir(), "missing", "MISSING",
               "\"command\": [\"no-such-program-anywhere\"]");
  node.start();
  auto study = synth_study(scratch / "study", 2, 16);
  for (auto ae : {"FAILS", "SLOW", "MISSING"})
    ASSERT_EQ(send(node, ae, study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(3, 60s)) << node.log();
  std::map<std::string, fs::path> by_stream;
  for (auto& job : node.job_dirs())
    by_stream[test_node::job_info(job, "stream")] = job;

  auto fails = by_stream.at("fails");
  EXPECT_EQ(test_node::job_info(fails, "state"), "failed");
  EXPECT_EQ(read_file(fails / "proc.json"),
            "[{\"success\":\"failed\",\"message\":\"exit status 3\"}]\n");
  auto log = read_file(fails / "processing.log");
  EXPECT_NE(log.find("reading " + (fails / "INPUT").string()), std::string::npos) << log;
  EXPECT_NE(log.find("no tumour found"), std::string::npos);

  auto slow = by_stream.at("slow");
  EXPECT_EQ(test_node::job_info(slow, "state"), "failed");
  EXPECT_NE(test_node::job_info(slow, "message").find("after the 1 s timeout"), std::string::npos)
      << test_node::job_info(slow, "message");

  auto missing = by_stream.at("missing");
  EXPECT_EQ(test_node::job_info(missing, "state"), "failed");
  EXPECT_NE(test_node::job_info(missing, "message").find("the program did not start"),
            std::string::npos);
}

TEST(execution, a_stream_runs_its_jobs_in_order_while_another_stream_runs_beside_it) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.3;
  test_node node{root.path(), options};
  write_sleeper(node.streams_dir(), "serial", "SERIAL", scratch / "serial.log", 1);
  write_sleeper(node.streams_dir(), "other", "OTHER", scratch / "other.log", 1);
  node.start();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(send(node, "SERIAL", synth_study(scratch / ("s" + std::to_string(i)), 2, 16)), 0);
  ASSERT_EQ(send(node, "OTHER", synth_study(scratch / "o", 2, 16)), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(4, 60s)) << node.log();
  auto serial = read_events(scratch / "serial.log");
  ASSERT_EQ(serial.size(), 6u);
  for (std::size_t i = 0; i < serial.size(); i += 2) {
    EXPECT_EQ(serial[i].what, "start");
    EXPECT_EQ(serial[i + 1].what, "end");
    EXPECT_EQ(serial[i].job, serial[i + 1].job) << "one job at a time";
    if (i > 0) {
      EXPECT_LT(serial[i - 2].job, serial[i].job) << "in the order they were queued";
    }
  }
  auto other = read_events(scratch / "other.log");
  ASSERT_EQ(other.size(), 2u);
  // The other stream did not wait for the serial one to finish.
  EXPECT_LT(other[0].time, serial.back().time);
}

TEST(execution, kill_9_with_jobs_queued_and_running_completes_each_exactly_once) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.3;
  test_node node{root.path(), options};
  write_sleeper(node.streams_dir(), "serial", "SERIAL", scratch / "serial.log", 2);
  node.start();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(send(node, "SERIAL", synth_study(scratch / ("s" + std::to_string(i)), 2, 16)), 0);
  ASSERT_TRUE(eventually([&] { return read_events(scratch / "serial.log").size() >= 1; }, 20s));
  node.kill();
  node.start();
  EXPECT_TRUE(node.wait_for_log("was running when the node stopped; it runs again", 5s))
      << node.log();
  ASSERT_TRUE(node.wait_for_finished_jobs(3, 60s)) << node.log();
  std::map<int, int> ends;
  for (auto& e : read_events(scratch / "serial.log"))
    if (e.what == "end")
      ++ends[e.job];
  ASSERT_EQ(ends.size(), 3u);
  for (auto& [job, count] : ends)
    EXPECT_EQ(count, 1) << "job " << job << " finished more than once";
  for (auto& job : node.job_dirs())
    EXPECT_EQ(test_node::job_info(job, "state"), "success");
}

TEST(execution, kill_9_mid_job_kills_the_programs_children_and_the_rerun_starts_from_empty_output) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.3;
  test_node node{root.path(), options};
  // The first run leaves three kinds of children behind: one in its process
  // group, one in a session of its own (setsid), and a double fork. Each
  // records its pid and writes into OUTPUT after 6 s. The second run ends.
  auto pids = scratch / "pids";
  auto script = node.streams_dir() / "spawner" / "work.sh";
  write_file(script, "#!/bin/sh\n"
                     "if [ -e " +
                         (scratch / "first-run").string() +
                         " ]; then\n"
                         "  echo second > \"$2/second.txt\"; exit 0\n"
                         "fi\n"
                         "touch " +
                         (scratch / "first-run").string() +
                         "\n"
                         "sh -c 'echo $$ >> " +
                         pids.string() +
                         "; sleep 6; echo x > \"$0/late-group-$$.txt\"' \"$2\" &\n"
                         "setsid sh -c 'echo $$ >> " +
                         pids.string() +
                         "; sleep 6; echo x > \"$0/late-session-$$.txt\"' \"$2\" &\n"
                         "(sh -c 'echo $$ >> " +
                         pids.string() +
                         "; sleep 6; echo x > \"$0/late-daemon-$$.txt\"' \"$2\" &) \n"
                         "sleep 60\n");
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  write_stream(node.streams_dir(), "spawner", "SPAWNER", "\"command\": [\"./work.sh\"]");
  node.start();
  ASSERT_EQ(send(node, "SPAWNER", synth_study(scratch / "study", 2, 16)), 0);
  auto children = [&] {
    std::vector<int> found;
    std::istringstream in{fs::exists(pids) ? read_file(pids) : ""};
    for (int pid; in >> pid;)
      found.push_back(pid);
    return found;
  };
  ASSERT_TRUE(eventually([&] { return children().size() == 3; }, 20s)) << node.log();

  node.kill();
  // Every process of the job dies with the node.
  for (int pid : children())
    EXPECT_TRUE(eventually([&] { return !fs::exists("/proc/" + std::to_string(pid)); }, 2s))
        << "process " << pid << " of the killed node's job is still alive";
  node.start();
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  auto jobs = node.job_dirs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(test_node::job_info(jobs[0], "state"), "success");
  // Past the moment the first run's children would have written.
  std::this_thread::sleep_for(7s);
  std::vector<std::string> output;
  for (auto& file : files_under(jobs[0] / "OUTPUT"))
    output.push_back(file.filename().string());
  EXPECT_EQ(output, std::vector<std::string>{"second.txt"});
}

TEST(execution, accept_filters_skip_studies_and_group_by_series_splits_them) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "mr-only", "MRONLY",
               "\"command\": [\"/bin/true\"], \"accept\": {\"Modality\": \"^MR$\"}");
  write_stream(node.streams_dir(), "per-series", "PERSERIES",
               "\"command\": [\"/bin/true\"], \"group_by\": \"series\"");
  node.start();
  ASSERT_EQ(send(node, "MRONLY", synth_study(scratch / "ct", 2, 16, 1, {"--modality", "CT"})), 0);
  ASSERT_EQ(send(node, "PERSERIES", synth_study(scratch / "three", 2, 16, 3)), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(4, 30s)) << node.log();
  std::map<std::string, std::vector<fs::path>> by_stream;
  for (auto& job : node.job_dirs())
    by_stream[test_node::job_info(job, "stream")].push_back(job);
  ASSERT_EQ(by_stream["mr-only"].size(), 1u);
  EXPECT_EQ(test_node::job_info(by_stream["mr-only"][0], "state"), "skipped");
  EXPECT_TRUE(test_node::input_files(by_stream["mr-only"][0]).empty());
  ASSERT_EQ(by_stream["per-series"].size(), 3u);
  for (auto& job : by_stream["per-series"]) {
    EXPECT_EQ(test_node::input_files(job).size(), 2u);
    EXPECT_FALSE(test_node::job_info(job, "SeriesInstanceUID").empty());
  }
}

TEST(execution, the_bundled_streams_run) {
  temp_dir root, scratch;
  test_node node{root.path()};
  for (auto& entry : fs::directory_iterator(source_dir() / "streams" / "library"))
    fs::copy(entry.path(), node.streams_dir() / entry.path().filename(),
             fs::copy_options::recursive);
  node.start();
  auto study = synth_study(scratch / "study", 8, 32);
  std::vector<std::string> titles;
  for (auto& entry : fs::directory_iterator(node.streams_dir())) {
    auto info = read_file(entry.path() / "info.json");
    auto at = info.find("\"AETitle\": \"") + 12;
    titles.push_back(info.substr(at, info.find('"', at) - at));
  }
  for (auto& title : titles)
    ASSERT_EQ(send(node, title, study), 0) << title;
  ASSERT_TRUE(node.wait_for_finished_jobs(titles.size(), 60s)) << node.log();
  for (auto& job : node.job_dirs())
    EXPECT_EQ(test_node::job_info(job, "state"), "success")
        << test_node::job_info(job, "stream") << ": " << test_node::job_info(job, "message");
}

TEST(execution, a_study_de_identified_again_after_a_restart_gets_the_same_pseudonyms) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "anon", "ANON",
               R"("pipeline": [{"kernel": "deidentify", "shift_dates": true}])");
  node.start();
  auto key = node.data_dir() / "deidentify.key";
  ASSERT_TRUE(fs::exists(key)) << "made at start";
  EXPECT_EQ(fs::status(key).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  auto study = synth_study(scratch / "study", 3, 16);
  ASSERT_EQ(send(node, "ANON", study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  // A restart, then the same study again: a job of its own.
  node.stop();
  node.start();
  ASSERT_EQ(send(node, "ANON", study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 30s)) << node.log();
  auto jobs = node.job_dirs();
  ASSERT_EQ(jobs.size(), 2u);
  for (auto& job : jobs)
    ASSERT_EQ(test_node::job_info(job, "state"), "success") << read_file(job / "processing.log");
  auto first = identities(jobs[0] / "OUTPUT"), second = identities(jobs[1] / "OUTPUT");
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first, second) << "the same UIDs, patient and dates in both jobs";
  auto original = identities(study);
  for (auto& [uid, identity] : first) {
    EXPECT_EQ(original.count(uid), 0u) << "the SOP Instance UID was replaced";
    EXPECT_EQ(uid.rfind("2.25.", 0), 0u) << uid;
    EXPECT_NE(identity.find("|ANON-"), std::string::npos) << identity;
    EXPECT_NE(identity, original.begin()->second);
  }
  expect_valid_dicom(files_under(jobs[1] / "OUTPUT"));
}

TEST(execution, with_keep_mapping_an_admin_finds_what_each_pseudonym_stands_for) {
  temp_dir root, scratch;
  node_options options;
  options.extra_config = R"("deidentify": {"keep_mapping": true})";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "anon", "ANON", R"("pipeline": [{"kernel": "deidentify"}])");
  node.start();
  auto study = synth_study(scratch / "study", 2, 16);
  ASSERT_EQ(send(node, "ANON", study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  auto job = node.job_dirs().at(0);
  ASSERT_EQ(test_node::job_info(job, "state"), "success") << read_file(job / "processing.log");
  auto output = files_under(job / "OUTPUT").at(0);
  auto input = test_node::input_files(job).at(0);
  auto look_up = [&](const std::string& value) {
    return http_get(node.web_port(), "/api/v1/pseudonyms?value=" + value);
  };
  auto study_uid = look_up(attribute_text(output, "StudyInstanceUID"));
  EXPECT_EQ(study_uid.status, 200) << study_uid.body;
  EXPECT_TRUE(contains(study_uid.body, "\"kind\":\"uid\",\"original\":\"" +
                                           attribute_text(input, "StudyInstanceUID") + "\""))
      << study_uid.body;
  auto patient = look_up(attribute_text(output, "PatientID"));
  EXPECT_EQ(patient.status, 200) << patient.body;
  EXPECT_TRUE(contains(patient.body, "\"kind\":\"patient_id\",\"original\":\"" +
                                         attribute_text(input, "PatientID") + "\""))
      << patient.body;
  EXPECT_TRUE(contains(patient.body, "\"kind\":\"patient_name\"")) << patient.body;
  EXPECT_TRUE(contains(patient.body, "\"job_id\":1")) << patient.body;
  EXPECT_EQ(look_up("2.25.1").status, 404);
  EXPECT_EQ(look_up("").status, 400);
}

TEST(execution,
     complete_on_release_makes_the_job_when_storescu_releases_not_after_the_quiet_period) {
  temp_dir root, scratch;
  test_node node{root.path()};
  // A quiet period of a minute: only the release can make the job in time.
  write_stream(node.streams_dir(), "rel", "REL",
               R"("command": ["/bin/true"], "complete_on": "release", "quiet_period_s": 60)");
  node.start();
  auto sent_at = std::chrono::steady_clock::now();
  ASSERT_EQ(send(node, "REL", synth_study(scratch / "a", 3, 16)), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 20s)) << node.log();
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, 30s);
  EXPECT_TRUE(contains(node.log(), "is complete (its association was released)")) << node.log();
  auto job = node.job_dirs().at(0);
  EXPECT_EQ(test_node::input_files(job).size(), 3u);
  // The same study again in a second association: a job of its own.
  ASSERT_EQ(send(node, "REL", scratch / "a"), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 20s)) << node.log();
}

TEST(execution, complete_when_makes_the_job_once_the_required_series_arrived_over_associations) {
  temp_dir root, scratch;
  test_node node{root.path()};
  // Two CT series of at least 8 instances together; a quiet period of a
  // minute, so only the rule can make the job in time.
  write_stream(node.streams_dir(), "req", "REQ",
               R"("command": ["/bin/true"], "quiet_period_s": 60,
                  "complete_when": {"series": 2, "modality": "CT", "min_instances": 8})");
  node.start();
  auto study = synth_study(scratch / "s", 4, 16, 2);
  std::vector<fs::path> series;
  for (auto& entry : fs::recursive_directory_iterator(study))
    if (entry.is_directory() && entry.path().filename().string().rfind("series", 0) == 0)
      series.push_back(entry.path());
  ASSERT_EQ(series.size(), 2u);
  std::sort(series.begin(), series.end());
  auto sent_at = std::chrono::steady_clock::now();
  // Each series in an association of its own, the second after the first ended.
  ASSERT_EQ(send(node, "REQ", series[0]), 0);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(node.job_dirs().empty()) << "one series is not the required set";
  ASSERT_EQ(send(node, "REQ", series[1]), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 20s)) << node.log();
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, 30s);
  EXPECT_TRUE(contains(node.log(), "its required set arrived (complete_when)")) << node.log();
  EXPECT_EQ(test_node::input_files(node.job_dirs().at(0)).size(), 8u);
}

TEST(execution, late_instances_follow_the_stream_s_policy_ignore_or_append_and_rerun) {
  temp_dir root, scratch;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "again", "AGAIN",
               R"("command": ["/bin/true"], "late": "append_and_rerun")");
  write_stream(node.streams_dir(), "once", "ONCE", R"("command": ["/bin/true"], "late": "ignore")");
  node.start();
  auto study = synth_study(scratch / "s", 3, 16);
  std::vector<fs::path> files = files_under(study);
  ASSERT_EQ(files.size(), 3u);
  ASSERT_EQ(send(node, "AGAIN", study), 0);
  ASSERT_EQ(send(node, "ONCE", study), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(2, 20s)) << node.log();
  // The modality sends one instance again after the jobs were made.
  ASSERT_EQ(send(node, "AGAIN", files[1]), 0);
  ASSERT_EQ(send(node, "ONCE", files[1]), 0);
  ASSERT_TRUE(node.wait_for_finished_jobs(4, 20s)) << node.log();
  std::map<std::string, std::vector<fs::path>> by_stream;
  for (auto& dir : node.job_dirs())
    by_stream[test_node::job_info(dir, "stream")].push_back(dir);
  ASSERT_EQ(by_stream["again"].size(), 2u);
  auto rerun = by_stream["again"][1];
  EXPECT_EQ(test_node::input_files(rerun).size(), 3u) << "the earlier two with the late one";
  EXPECT_TRUE(contains(node.log(), "again: its 2 instances with 1 that arrived after it was made"))
      << node.log();
  EXPECT_EQ(test_node::job_info(rerun, "state"), "success");
  // After its run, the job still says how it came to be.
  auto id = rerun.filename().string();
  auto shown = json::parse(http_get(node.web_port(), "/api/v1/jobs/" + id).body, "job");
  ASSERT_TRUE(shown);
  EXPECT_EQ((*shown)["state"], "success");
  EXPECT_TRUE(contains((*shown)["origin"].get<std::string>(),
                       "again: its 2 instances with 1 that arrived after it was made"))
      << json::dump(*shown);
  ASSERT_EQ(by_stream["once"].size(), 2u);
  auto ignored = by_stream["once"][1];
  EXPECT_EQ(test_node::job_info(ignored, "state"), "skipped");
  EXPECT_TRUE(test_node::input_files(ignored).empty());
  EXPECT_TRUE(node.incoming_files().empty()) << "the ignored instance is kept in the store";
  EXPECT_EQ(node.pending_instances(), 0u);
}
