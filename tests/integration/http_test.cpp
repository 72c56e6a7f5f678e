// The HTTP server of a running node, over real sockets: a study sent with
// storescu is watched through the API and the event feed, its results are
// downloaded, and the server's limits and start-up checks hold.

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <regex>
#include <thread>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// Counts the local file headers of a ZIP ("PK\3\4").
std::size_t zip_entry_count(const std::string& zip) {
  std::size_t n = 0, at = 0;
  while ((at = zip.find(std::string("PK\x03\x04", 4), at)) != std::string::npos) {
    ++n;
    at += 4;
  }
  return n;
}

/// The names of a ZIP's entries, from its local file headers.
std::vector<std::string> zip_entry_names(const std::string& zip) {
  std::vector<std::string> names;
  std::size_t at = 0;
  auto le16 = [&](std::size_t offset) {
    return static_cast<std::size_t>(static_cast<unsigned char>(zip[offset]) |
                                    (static_cast<unsigned char>(zip[offset + 1]) << 8));
  };
  while ((at = zip.find(std::string("PK\x03\x04", 4), at)) != std::string::npos &&
         at + 30 <= zip.size()) {
    names.push_back(zip.substr(at + 30, le16(at + 26)));
    at += 30;
  }
  return names;
}

/// Starts `node` with a stream that copies INPUT to OUTPUT and waits until
/// job 1, of a 2-instance study, has finished.
void finish_one_copy_job(test_node& node, const temp_dir& scratch) {
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])");
  node.start();
  send_synthetic_study(node, scratch / "study", "COPYAE", 2);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
}

} // namespace

TEST(http, downloads_never_follow_symbolic_links_out_of_the_job_folder) {
  temp_dir root, scratch;
  test_node node{root.path()};
  finish_one_copy_job(node, scratch);
  // What a job program (or anyone who can write there) might leave in OUTPUT.
  auto output = node.data_dir() / "jobs" / "1" / "OUTPUT";
  fs::create_symlink("/etc/passwd", output / "passwd");
  fs::create_directory_symlink("/etc", output / "etc");
  fs::create_symlink("../info.json", output / "info.json");
  fs::create_directories(output / "sub");
  fs::create_symlink("../../../../..", output / "sub" / "up");
  write_file(output / "sub" / "real.txt", "kept");

  auto zip = http_get(node.web_port(), "/api/v1/jobs/1/output.zip");
  ASSERT_EQ(zip.status, 200);
  auto names = zip_entry_names(zip.body);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 3u) << ::testing::PrintToString(names);
  EXPECT_EQ(names.back(), "job-1-OUTPUT/sub/real.txt");
  for (auto& name : names) {
    EXPECT_FALSE(contains(name, "..")) << name;
    EXPECT_NE(name.front(), '/') << name;
  }
  EXPECT_FALSE(contains(zip.body, "root:x:0:0")) << "/etc/passwd is in the download";
  EXPECT_FALSE(contains(zip.body, "AETitleCalled")) << "the job's info.json is in the download";
  EXPECT_TRUE(contains(zip.body, "kept"));
}

TEST(http, a_study_sent_by_storescu_is_watched_through_the_api_and_downloaded) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.5;
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "echo copying; cp -r \"$0\"/. \"$1\""])");
  node.start();
  auto port = node.web_port();
  ASSERT_EQ(http_get(port, "/healthz").status, 200);
  // The UI page and its script come from the binary itself.
  auto page = http_get(port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_TRUE(contains(page.body, "<script src=\"/ui/app.js\">")) << page.body;
  EXPECT_EQ(http_get(port, "/ui/app.js").headers["content-type"], "text/javascript; charset=utf-8");

  // Listen to the feed while the study arrives.
  std::string feed;
  std::thread listener{[&] { feed = read_events(port, "/api/v1/events", 3, 30000); }};
  std::this_thread::sleep_for(300ms);
  auto study = synth_study(scratch / "study", 6, 32);
  auto sent = run({"storescu", "-aec", "COPYAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()},
                  60s, {{"TCP_NODELAY", "1"}});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  std::string jobs;
  ASSERT_TRUE(eventually(
      [&] {
        jobs = http_get(port, "/api/v1/jobs?state=success").body;
        return contains(jobs, "\"total\":1");
      },
      30s))
      << jobs << node.log();
  listener.join();
  EXPECT_TRUE(contains(feed, "event: job\ndata: {\"id\":1,")) << feed;
  EXPECT_TRUE(contains(jobs, "\"calling_ae\":\"STORESCU\"")) << jobs;
  EXPECT_TRUE(contains(jobs, "\"instances\":6")) << jobs;
  EXPECT_TRUE(contains(http_get(port, "/api/v1/jobs?q=STORESCU").body, "\"total\":1"));
  EXPECT_TRUE(contains(http_get(port, "/api/v1/jobs?stream=other").body, "\"total\":0"));
  EXPECT_TRUE(
      contains(http_get(port, "/api/v1/jobs?from=2000-01-01&to=2000-01-02").body, "\"total\":0"));

  auto log = http_get(port, "/api/v1/jobs/1/log");
  EXPECT_TRUE(contains(log.body, "copying")) << log.body;
  auto output = http_get(port, "/api/v1/jobs/1/output.zip");
  EXPECT_EQ(output.status, 200);
  EXPECT_EQ(output.headers["content-type"], "application/zip");
  EXPECT_EQ(output.headers["content-disposition"], "attachment; filename=\"job-1-OUTPUT.zip\"");
  EXPECT_EQ(zip_entry_count(output.body), 6u);
  EXPECT_EQ(zip_entry_count(http_get(port, "/api/v1/jobs/1/input.zip").body), 6u);

  // The metrics count what happened.
  auto metrics = http_get(port, "/metrics").body;
  EXPECT_TRUE(contains(metrics, "dcmstreams_instances_received_total{called_ae=\"COPYAE\"} 6"))
      << metrics;
  EXPECT_TRUE(contains(metrics, "dcmstreams_jobs_total{stream=\"copy\",result=\"success\"} 1"))
      << metrics;
}

TEST(http, cross_site_requests_and_foreign_host_names_are_refused) {
  temp_dir root, scratch;
  test_node node{root.path()};
  finish_one_copy_job(node, scratch);
  auto port = node.web_port();
  auto own = "127.0.0.1:" + std::to_string(port);
  auto job_exists = [&] { return http_get(port, "/api/v1/jobs/1").status == 200; };

  // A page on another site makes the browser send these; none may act.
  auto deleted = http_get(port, "/code/php/deleteStudy.php?scratchdir=1",
                          {{"Referer", "http://evil.example/page.html"}});
  EXPECT_EQ(deleted.status, 403) << deleted.body;
  // With referrers switched off, the browser still says Sec-Fetch-Site.
  deleted =
      http_get(port, "/code/php/deleteStudy.php?scratchdir=1", {{"Sec-Fetch-Site", "cross-site"}});
  EXPECT_EQ(deleted.status, 403) << deleted.body;
  auto retried =
      http_request(port, "POST", "/api/v1/jobs/1/retry", "", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(retried.status, 403) << retried.body;
  EXPECT_TRUE(contains(retried.body, "http://evil.example")) << retried.body;
  auto uploaded = http_request(
      port, "POST", "/code/php/processZip.php", "--x--\r\n",
      {{"Origin", "http://evil.example"}, {"Content-Type", "multipart/form-data; boundary=x"}});
  EXPECT_EQ(uploaded.status, 403) << uploaded.body;
  EXPECT_EQ(http_request(port, "POST", "/api/v1/jobs/1/retry", "", {{"Origin", "null"}}).status,
            403);
  EXPECT_TRUE(job_exists());

  // DNS rebinding: a foreign name that resolves to this machine.
  for (std::string host : {std::string("evil.example"), "evil.example:" + std::to_string(port)}) {
    auto rebound = http_get(port, "/api/v1/jobs", {{"Host", host}});
    EXPECT_EQ(rebound.status, 421) << host << ": " << rebound.body;
    EXPECT_TRUE(contains(rebound.body, "web.hostnames")) << rebound.body;
  }
  EXPECT_EQ(http_get(port, "/", {{"Host", "evil.example"}}).status, 421);

  // The node's own pages, loopback names and programs without a browser go on.
  EXPECT_EQ(http_get(port, "/api/v1/jobs", {{"Host", "localhost:" + std::to_string(port)}}).status,
            200);
  auto same_origin = http_request(port, "POST", "/api/v1/jobs/1/retry", "",
                                  {{"Host", own}, {"Origin", "http://" + own}});
  EXPECT_LT(same_origin.status, 300) << same_origin.body;
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s));
  ASSERT_TRUE(eventually(
      [&] { return contains(http_get(port, "/api/v1/jobs/1").body, "\"state\":\"success\""); },
      30s));
  auto by_mb = http_get(port, "/code/php/deleteStudy.php?scratchdir=1");
  EXPECT_EQ(by_mb.status, 200) << by_mb.body;
  EXPECT_FALSE(job_exists());
}

TEST(http, oversized_bodies_get_413_and_the_server_keeps_serving) {
  temp_dir root;
  test_node node{root.path()};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  auto big = http_request(node.web_port(), "PUT", "/api/v1/routing", std::string(2 << 20, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_TRUE(contains(big.body, "larger than 1048576 bytes")) << big.body;
  EXPECT_EQ(http_get(node.web_port(), "/healthz").status, 200);
  EXPECT_FALSE(fs::exists(root.path() / "routing.json"));

  // Oversized request heads get an answer, not a closed connection.
  auto long_url = http_get(node.web_port(), "/api/v1/jobs?q=" + std::string(200 << 10, 'x'));
  EXPECT_EQ(long_url.status, 414) << long_url.body;
  EXPECT_TRUE(contains(long_url.body, "longer than 8192 bytes")) << long_url.body;
  auto big_header = http_get(node.web_port(), "/healthz", {{"X-Big", std::string(9000, 'x')}});
  EXPECT_EQ(big_header.status, 431) << big_header.body;
  std::map<std::string, std::string> many;
  for (int i = 0; i < 3000; ++i)
    many["X-Header-" + std::to_string(i)] = "1";
  auto many_headers = http_get(node.web_port(), "/healthz", many);
  EXPECT_EQ(many_headers.status, 431) << many_headers.body;
  EXPECT_EQ(http_get(node.web_port(), "/healthz").status, 200);
}

TEST(http, a_node_reachable_from_other_machines_needs_users) {
  temp_dir dir;
  write_stream(dir / "streams", "copy", "COPYAE");
  auto served =
      run({dcmstreams_binary().string(), "serve", "--data", (dir / "data").string(), "--streams",
           (dir / "streams").string(), "--dicom-port", std::to_string(free_port()), "--web-port",
           std::to_string(free_port()), "--web-bind", "0.0.0.0"},
          30s);
  EXPECT_EQ(served.exit_code, 1);
  EXPECT_TRUE(contains(served.output, "web.users is empty")) << served.output;
  EXPECT_TRUE(contains(served.output, "dcmstreams passwd")) << served.output;
}

TEST(http, passwd_prints_a_hash_the_node_accepts) {
  temp_dir dir;
  auto script = dir / "passwd.sh";
  write_file(script, "printf 'correct horse\\n' | " + dcmstreams_binary().string() +
                         " passwd --name ada --role admin");
  auto made = run({"/bin/sh", script.string()});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  static const std::regex user_entry{
      R"re(\{"name":"ada","password_hash":"(\$argon2id\$[^"]+)","role":"admin"\})re"};
  std::smatch match;
  ASSERT_TRUE(std::regex_search(made.output, match, user_entry)) << made.output;
  auto entry = match[0].str();

  temp_dir root;
  node_options options;
  options.web_json = ", \"users\": [" + entry + "]";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/status").status, 401);
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/status",
                     {{"Authorization", basic_auth("ada", "correct horse")}})
                .status,
            200);
  auto short_one =
      run({"/bin/sh", "-c", "printf 'short\\n' | " + dcmstreams_binary().string() + " passwd"});
  EXPECT_EQ(short_one.exit_code, 1);
  EXPECT_TRUE(contains(short_one.output, "shorter than 8 characters")) << short_one.output;

  // Guessing: after three wrong passwords a client waits, without a hash
  // being computed, while health checks and other requests are answered.
  std::atomic<bool> guessing{true};
  std::atomic<int> wrong{0}, told_to_wait{0}, other{0};
  std::vector<std::thread> guessers;
  for (int i = 0; i < 8; ++i)
    guessers.emplace_back([&, i] {
      for (int n = 0; guessing; ++n) {
        auto reply =
            http_get(node.web_port(), "/api/v1/status",
                     {{"Authorization", basic_auth("ada", "guess " + std::to_string(n * 8 + i))}});
        if (reply.status == 401)
          ++wrong;
        else if (reply.status == 429 && !reply.headers["retry-after"].empty())
          ++told_to_wait;
        else
          ++other;
      }
    });
  int healthy = 0;
  for (int i = 0; i < 20; ++i) {
    healthy += http_get(node.web_port(), "/healthz").status == 200;
    std::this_thread::sleep_for(50ms);
  }
  guessing = false;
  for (auto& guesser : guessers)
    guesser.join();
  EXPECT_EQ(healthy, 20);
  EXPECT_EQ(other, 0);
  EXPECT_GE(wrong, 3);
  EXPECT_GT(told_to_wait, 10 * wrong)
      << wrong << " passwords checked, " << told_to_wait << " guesses told to wait";
  auto waiting = http_get(node.web_port(), "/api/v1/status",
                          {{"Authorization", basic_auth("ada", "guess again")}});
  EXPECT_TRUE(waiting.status == 401 ||
              contains(waiting.body, "too many wrong passwords from 127.0.0.1"))
      << waiting.body;
  // After the wait, the right password gets in and the slate is clean.
  EXPECT_TRUE(eventually(
      [&] {
        return http_get(node.web_port(), "/api/v1/status",
                        {{"Authorization", basic_auth("ada", "correct horse")}})
                   .status == 200;
      },
      40s));
}

namespace {

/// A web.users entry made by `dcmstreams passwd`.
std::string user_entry(const temp_dir& dir, const std::string& name, const std::string& role,
                       const std::string& password) {
  auto script = dir / ("passwd-" + name + ".sh");
  write_file(script, "printf '" + password + "\\n' | " + dcmstreams_binary().string() +
                         " passwd --name " + name + " --role " + role);
  auto made = run({"/bin/sh", script.string()});
  EXPECT_EQ(made.exit_code, 0) << made.output;
  auto start = made.output.find('{');
  return start == std::string::npos ? ""
                                    : made.output.substr(start, made.output.rfind('}') - start + 1);
}

} // namespace

TEST(http, jobs_show_patient_and_study_and_viewers_may_see_them_masked) {
  temp_dir root, scratch;
  node_options options;
  options.web_json = ", \"mask_patient_for_viewers\": true, \"users\": [" +
                     user_entry(scratch, "ada", "admin", "admin secret") + ", " +
                     user_entry(scratch, "vic", "viewer", "viewer secret") + "]";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  auto study = synth_study(scratch / "s", 3, 16, 2);
  auto first = files_under(study).at(0);
  auto patient_id = attribute_text(first, "PatientID");
  ASSERT_FALSE(patient_id.empty());
  ASSERT_EQ(run({"storescu", "-aec", "COPYAE", "+sd", "+r", "127.0.0.1",
                 std::to_string(node.port()), study.string()})
                .exit_code,
            0);
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 20s)) << node.log();
  auto admin =
      std::map<std::string, std::string>{{"Authorization", basic_auth("ada", "admin secret")}};
  auto viewer =
      std::map<std::string, std::string>{{"Authorization", basic_auth("vic", "viewer secret")}};
  auto list = [&](const std::map<std::string, std::string>& who, const std::string& query) {
    auto reply = http_get(node.web_port(), "/api/v1/jobs" + query, who);
    EXPECT_EQ(reply.status, 200) << reply.body;
    auto body = json::parse(reply.body, "jobs");
    return body ? *body : json::value{};
  };
  auto seen = list(admin, "");
  ASSERT_EQ(seen["total"], 1);
  auto& job = seen["jobs"][0];
  EXPECT_EQ(job["patient_id"], patient_id);
  EXPECT_EQ(job["patient_name"], attribute_text(first, "PatientName"));
  EXPECT_EQ(job["study_date"], attribute_text(first, "StudyDate"));
  EXPECT_EQ(job["accession_number"], attribute_text(first, "AccessionNumber"));
  EXPECT_EQ(job["modalities"], "CT");
  EXPECT_EQ(job["series"], 2);
  EXPECT_EQ(job["instances"], 6);
  EXPECT_EQ(list(admin, "?q=" + patient_id)["total"], 1) << "found by patient ID";

  auto masked = list(viewer, "");
  ASSERT_EQ(masked["total"], 1);
  EXPECT_EQ(masked["jobs"][0]["patient_id"], "•••");
  EXPECT_EQ(masked["jobs"][0]["patient_name"], "•••");
  EXPECT_EQ(masked["jobs"][0]["patient_masked"], true);
  EXPECT_EQ(masked["jobs"][0]["modalities"], "CT") << "the study stays visible";
  EXPECT_EQ(list(viewer, "?q=" + patient_id)["total"], 0) << "no probing by patient ID";
  auto detail = http_get(node.web_port(), "/api/v1/jobs/1", viewer);
  EXPECT_FALSE(contains(detail.body, patient_id)) << detail.body;
  auto zip = http_get(node.web_port(), "/api/v1/jobs/1/input.zip", viewer);
  EXPECT_EQ(zip.status, 403);
  EXPECT_TRUE(contains(zip.body, "mask_patient_for_viewers")) << zip.body;
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/jobs/1/input.zip", admin).status, 200);
}

TEST(http, a_running_pipeline_says_which_step_it_is_at) {
  temp_dir root, scratch;
  test_node node{root.path(), {}};
  write_stream(node.streams_dir(), "smooth", "SMOOTHAE",
               R"("pipeline": [{"kernel": "median"}, {"kernel": "median"}, {"kernel": "median"}])");
  node.start();
  // Each step takes a good part of a second on 2 cores: long enough to watch.
  auto study = synth_study(scratch / "s", 100, 256, 1);
  ASSERT_EQ(run({"storescu", "-aec", "SMOOTHAE", "+sd", "+r", "127.0.0.1",
                 std::to_string(node.port()), study.string()})
                .exit_code,
            0);
  // Watched as the job page does, until the job ends: every phase seen is
  // in order, and the steps are among them.
  std::vector<int> phases;
  std::string doing;
  for (auto until = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < until;) {
    auto reply = http_get(node.web_port(), "/api/v1/jobs/1");
    auto job = json::parse(reply.body, "job");
    if (reply.status == 200 && job && (*job)["state"] == "running" &&
        (*job)["progress"].is_object()) {
      auto& progress = (*job)["progress"];
      EXPECT_EQ(progress["steps"], 3);
      int step = progress["step"].get<int>();
      if (phases.empty() || phases.back() != step)
        phases.push_back(step);
      if (step == 2)
        doing = progress["doing"].get<std::string>();
    }
    if (reply.status == 200 && job && (*job)["state"] == "success")
      break;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 10s)) << node.log();
  EXPECT_TRUE(std::is_sorted(phases.begin(), phases.end()));
  EXPECT_NE(std::find(phases.begin(), phases.end(), 2), phases.end())
      << "step 2 of 3 was never reported; seen: " << phases.size() << " phases";
  EXPECT_TRUE(contains(doing, "median")) << doing;
  auto done = json::parse(http_get(node.web_port(), "/api/v1/jobs/1").body, "job");
  ASSERT_TRUE(done);
  EXPECT_FALSE(done->contains("progress"));
  EXPECT_FALSE(fs::exists(node.job_dirs().at(0) / "progress.json"));
}
