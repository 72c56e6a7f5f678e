// The HTTP API's handlers, called directly (no sockets) against a real node:
// the actors, the database and the data folder of a temporary directory.

#include "actors/node.hpp"
#include "metrics/registry.hpp"
#include "net/storage_scu.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/jobs/store.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"
#include "web/api.hpp"
#include "web/auth.hpp"
#include "web/routes.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A ZIP with these (name, content) entries, made with libarchive.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* data, const void* buffer, size_t size) -> la_ssize_t {
        static_cast<std::string*>(data)->append(static_cast<const char*>(buffer), size);
        return static_cast<la_ssize_t>(size);
      },
      nullptr);
  for (auto& [name, content] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

/// The entry names of a ZIP held in memory.
std::vector<std::string> zip_entries(const std::string& zip) {
  std::vector<std::string> names;
  archive* a = archive_read_new();
  archive_read_support_format_zip(a);
  if (archive_read_open_memory(a, zip.data(), zip.size()) == ARCHIVE_OK) {
    archive_entry* e = nullptr;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK)
      names.push_back(archive_entry_pathname(e));
  }
  archive_read_free(a);
  return names;
}

struct api_fixture : ::testing::Test {
  temp_dir dir;
  node_config config;
  metrics::registry registry;
  std::unique_ptr<node_metrics> counters;
  net::node_storage_client client;
  caf::actor_system_config actor_config; // the system keeps a reference to it
  std::unique_ptr<caf::actor_system> system;
  std::optional<node_actors> actors;
  event_hub events;
  std::unique_ptr<web::api_service> api;

  void start(std::vector<user_config> users = {}) {
    config.data_dir = dir / "data";
    config.streams_dir = dir / "streams";
    config.routing_file = dir / "routing.json";
    config.completion.quiet_period_s = 30;
    config.storage.reserve_free_mb = 1;
    config.storage.sync = sync_mode::none;
    config.web.users = std::move(users);
    config.web.hostnames = {"node.example"};
    write_stream(config.streams_dir, "copy", "COPYAE",
                 "\"command\": [\"/bin/sh\", \"-c\", \"echo copying; cp -r \\\"$0\\\"/. "
                 "\\\"$1\\\"\"]");
    write_file(config.streams_dir / "broken" / "info.json", "{\"AETitle\": 5}");
    store_layout layout{config.data_dir};
    for (auto& d :
         {layout.incoming_dir(), layout.receive_dir(), layout.store_dir(), layout.jobs_dir()})
      fs::create_directories(d);
    auto db = database::open(layout.database_file());
    ASSERT_TRUE(db);
    counters = std::make_unique<node_metrics>(registry);
    actor_config.set("logger.verbosity", caf::atom("quiet"));
    system = std::make_unique<caf::actor_system>(actor_config);
    auto spawned = spawn_node(*system, config, std::move(*db), *counters, client, &events);
    ASSERT_TRUE(spawned) << spawned.error().message;
    actors = std::move(*spawned);
    web::api_backend backend{actors->job_store,
                             actors->job_manager,
                             actors->assembler,
                             actors->router,
                             actors->registry,
                             &registry,
                             &events,
                             counters.get(),
                             [] { return std::string{}; },
                             {},
                             {},
                             {},
                             {}};
    api = std::make_unique<web::api_service>(*system, web::api_settings{config, "test", now_ms()},
                                             backend);
  }

  void TearDown() override {
    if (api)
      api->stop();
    if (actors)
      stop_node(*system, *actors);
  }

  web::http_response call(const std::string& method, const std::string& target,
                          std::string body = {}, std::map<std::string, std::string> headers = {}) {
    web::http_request request;
    request.method = method;
    request.target = target;
    web::parse_target(target, request.path, request.query);
    request.body = std::move(body);
    request.headers = std::move(headers);
    request.remote = "127.0.0.1";
    auto answer = std::make_shared<std::promise<web::http_response>>();
    auto future = answer->get_future();
    api->handle(request, [answer](web::http_response r) { answer->set_value(std::move(r)); });
    if (future.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << method << " " << target << " did not answer";
      return {};
    }
    return future.get();
  }

  /// Uploads a ZIP as the HTTP server hands it over: the body in a file.
  web::http_response upload(const std::string& target, const std::string& zip,
                            std::map<std::string, std::string> headers = {}) {
    auto file = dir / ("upload-" + std::to_string(uploads++));
    write_file(file, zip);
    web::http_request request;
    request.method = "POST";
    request.target = target;
    web::parse_target(target, request.path, request.query);
    request.body_file = file.string();
    request.headers = std::move(headers);
    request.remote = "127.0.0.1";
    std::promise<web::http_response> answer;
    auto future = answer.get_future();
    api->handle(request, [&answer](web::http_response r) { answer.set_value(std::move(r)); });
    EXPECT_EQ(future.wait_for(30s), std::future_status::ready);
    return future.get();
  }

  /// Reads a streamed body to its end.
  static std::string drain(web::body_stream& stream) {
    std::string all;
    for (;;) {
      std::promise<std::optional<std::string>> piece;
      auto next = piece.get_future();
      stream.pull([&piece](std::optional<std::string> p) { piece.set_value(std::move(p)); });
      if (next.wait_for(20s) != std::future_status::ready)
        return all;
      auto p = next.get();
      if (!p)
        return all;
      all += *p;
    }
  }

  std::string study_zip(int instances) {
    auto out = dir / ("synth-" + std::to_string(uploads++));
    synth_study(out, instances, 16);
    std::vector<std::pair<std::string, std::string>> entries;
    for (auto& e : fs::recursive_directory_iterator(out))
      if (e.is_regular_file())
        entries.push_back({e.path().filename().string(), *read_text_file(e.path())});
    entries.push_back({"README.txt", "not DICOM"});
    return make_zip(entries);
  }

  /// Waits until job `id` has one of the finished states.
  std::string wait_for_job(std::int64_t id) {
    std::string body;
    eventually(
        [&] {
          body = call("GET", "/api/v1/jobs/" + std::to_string(id)).body;
          return body.find("\"state\":\"success\"") != std::string::npos ||
                 body.find("\"state\":\"failed\"") != std::string::npos;
        },
        20s);
    return body;
  }

  int uploads = 0;
};

TEST_F(api_fixture, health_readiness_status_and_streams) {
  start();
  auto health = call("GET", "/healthz");
  EXPECT_EQ(health.status, 200u);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  auto ready = call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200u) << ready.body;
  EXPECT_TRUE(contains(ready.body, "\"ready\":true"));
  auto status = call("GET", "/api/v1/status");
  EXPECT_EQ(status.status, 200u);
  EXPECT_TRUE(contains(status.body, "\"version\":\"test\"")) << status.body;
  EXPECT_TRUE(contains(status.body, "\"streams\":1")) << status.body;
  auto streams = call("GET", "/api/v1/streams", {}, {{"host", "node.example:2813"}});
  EXPECT_EQ(streams.status, 200u);
  EXPECT_TRUE(contains(streams.body, "\"ae_title\":\"COPYAE\"")) << streams.body;
  EXPECT_TRUE(contains(streams.body, "-aec COPYAE +sd +r node.example 11113")) << streams.body;
  EXPECT_TRUE(contains(streams.body, "\"eta_s\":null")) << streams.body;
  // The stream that did not load is listed with its reason.
  EXPECT_TRUE(contains(streams.body, "broken")) << streams.body;
  auto metrics = call("GET", "/metrics");
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(contains(metrics.body, "dcmstreams_jobs_total")) << metrics.body;
}

TEST_F(api_fixture, bad_parameters_unknown_ids_and_traversal_are_refused) {
  start();
  auto list = call("GET", "/api/v1/jobs");
  EXPECT_EQ(list.status, 200u);
  EXPECT_EQ(list.body, R"({"jobs":[],"total":0,"limit":50,"offset":0})");
  struct expectation {
    std::string method, target;
    unsigned status;
    std::string error;
  };
  for (auto& e : std::vector<expectation>{
           {"GET", "/api/v1/jobs?state=bogus", 400, "state=bogus is not a job state"},
           {"GET", "/api/v1/jobs?limit=0", 400, "limit=0 must be a whole number from 1 to 1000"},
           {"GET", "/api/v1/jobs?from=yesterday", 400, "from=yesterday is not a time"},
           {"GET", "/api/v1/jobs/42", 404, "no job 42"},
           {"GET", "/api/v1/jobs/abc", 400, "\\\"abc\\\" is not a job id"},
           {"GET", "/api/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd/log", 400, "is not a job id"},
           {"GET", "/api/v1/jobs/42/log", 404, "no job 42"},
           {"GET", "/api/v1/jobs/42/output.zip", 404, "no job 42"},
           {"POST", "/api/v1/jobs/42/retry", 404, "42"},
           {"POST", "/api/v1/jobs/42/cancel", 404, "no job 42"},
           {"DELETE", "/api/v1/jobs/42", 404, "no job 42"},
           {"GET", "/api/v1/sends/7", 404, "no send 7"},
           {"POST", "/api/v1/sends/7/retry", 404, "no send 7"},
           {"POST", "/api/v1/studies/1.2.3/complete", 404, "no study 1.2.3 is pending"},
           {"POST", "/api/v1/studies/..%2Fx/complete", 400, "is not a Study Instance UID"},
           {"GET", "/api/v1/nothing", 404, "no GET /api/v1/nothing"},
           {"PATCH", "/api/v1/jobs", 405, "no PATCH /api/v1/jobs"},
           {"PATCH", "/api/v1/jobs/42", 405, "it takes GET, DELETE"},
           {"GET", "/api/v1/jobs/42/retry", 405, "it takes POST"},
           {"PUT", "/api/v1/jobs/42/log", 405, "it takes GET"},
           {"GET", "/scratch/..%2F..%2Fetc/processing.log", 404, "no such resource"},
           {"GET", "/ui/../../etc/passwd", 404, "no such page"},
           {"GET", "/code/php/deleteStudy.php?scratchdir=..", 400, "is not a job"},
           {"POST", "/api/v1/upload?ae=COPYAE", 400, "the upload has no body"},
           {"POST", "/api/v1/upload", 400, "say which stream"},
           {"POST", "/api/v1/login", 400, "invalid JSON"},
       }) {
    auto r = call(e.method, e.target);
    EXPECT_EQ(r.status, e.status) << e.method << " " << e.target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json") << e.target;
    EXPECT_TRUE(contains(r.body, "{\"error\":\"")) << e.target << ": " << r.body;
    EXPECT_TRUE(contains(r.body, e.error)) << e.target << ": " << r.body;
  }
}

TEST_F(api_fixture, upload_runs_a_job_whose_log_and_results_are_served_then_deleted) {
  start();
  auto bad = upload("/api/v1/upload?ae=COPYAE", "this is no zip");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_TRUE(contains(bad.body, "not a ZIP archive")) << bad.body;
  auto unknown = upload("/api/v1/upload?ae=NOPE", study_zip(1));
  EXPECT_EQ(unknown.status, 404u);
  EXPECT_TRUE(contains(unknown.body, "no enabled stream has the AE title \\\"NOPE\\\""));

  auto accepted = upload("/api/v1/upload?ae=COPYAE", study_zip(4));
  ASSERT_EQ(accepted.status, 202u) << accepted.body;
  EXPECT_TRUE(contains(accepted.body, "\"instances\":4")) << accepted.body;
  EXPECT_TRUE(contains(accepted.body, "README.txt: not a DICOM file")) << accepted.body;
  auto job = wait_for_job(1);
  EXPECT_TRUE(contains(job, "\"state\":\"success\"")) << job;
  EXPECT_TRUE(contains(job, "\"calling_ae\":\"WEBUPLOAD\"")) << job;
  EXPECT_TRUE(contains(job, "\"instances\":4")) << job;
  EXPECT_TRUE(contains(job, "\"input_files\":4")) << job;
  EXPECT_TRUE(contains(job, "\"output_files\":4")) << job;

  auto log = call("GET", "/api/v1/jobs/1/log");
  EXPECT_EQ(log.status, 200u);
  EXPECT_TRUE(contains(log.body, "copying")) << log.body;
  auto tail = call("GET", "/api/v1/jobs/1/log?offset=1000000");
  EXPECT_TRUE(contains(tail.body, "\"text\":\"\"")) << tail.body;

  auto zip = call("GET", "/api/v1/jobs/1/output.zip");
  ASSERT_EQ(zip.status, 200u);
  ASSERT_TRUE(zip.stream);
  auto names = zip_entries(drain(*zip.stream));
  EXPECT_EQ(names.size(), 4u);
  for (auto& name : names)
    EXPECT_EQ(name.rfind("job-1-OUTPUT/", 0), 0u) << name;

  // The old appliance's client sees the job as a scratch folder.
  auto scratch = call("GET", "/code/php/getScratch.php");
  EXPECT_TRUE(contains(scratch.body, "\"scratchdir\":\"1\"")) << scratch.body;
  EXPECT_TRUE(contains(scratch.body, "\"instances\":\"4\"")) << scratch.body;

  auto deleted = call("DELETE", "/api/v1/jobs/1");
  EXPECT_EQ(deleted.status, 200u) << deleted.body;
  EXPECT_FALSE(fs::exists(store_layout{config.data_dir}.job_dir(1)));
  EXPECT_EQ(call("GET", "/api/v1/jobs/1").status, 404u);
}

TEST_F(api_fixture, legacy_process_zip_takes_the_old_clients_form) {
  start();
  auto zip = study_zip(2);
  std::string boundary = "----mbboundary";
  std::string body =
      "--" + boundary + "\r\nContent-Disposition: form-data; name=\"aetitle\"\r\n\r\nCOPYAE\r\n--" +
      boundary + "\r\nContent-Disposition: form-data; name=\"sender\"\r\n\r\nhauke:project\r\n--" +
      boundary +
      "\r\nContent-Disposition: form-data; name=\"theFile\"; filename=\"s.zip\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n" +
      zip + "\r\n--" + boundary + "--\r\n";
  auto r = upload("/code/php/processZip.php", body,
                  {{"content-type", "multipart/form-data; boundary=" + boundary}});
  ASSERT_EQ(r.status, 202u) << r.body;
  auto job = wait_for_job(1);
  EXPECT_TRUE(contains(job, "\"calling_ae\":\"hauke:project\"")) << job;
  auto status = call("GET", "/code/php/getStatus.php");
  EXPECT_EQ(status.body, R"([["COPYAE","0","0","1"]])");
  auto buckets = call("GET", "/code/php/getInstalledBuckets.php");
  EXPECT_TRUE(contains(buckets.body, "\"AETitle\":\"COPYAE\"")) << buckets.body;
  auto download = call("GET", "/code/php/getOutputZip.php?folder=1");
  ASSERT_TRUE(download.stream);
  EXPECT_EQ(zip_entries(drain(*download.stream)).size(), 2u);
}

TEST_F(api_fixture, routing_is_validated_with_the_place_of_each_mistake) {
  start();
  auto empty = call("GET", "/api/v1/routing");
  EXPECT_EQ(empty.status, 200u);
  EXPECT_TRUE(contains(empty.body, "\"routing\": []"));
  auto syntax = call("PUT", "/api/v1/routing", "{\n  \"routing\": [,]\n}");
  EXPECT_EQ(syntax.status, 422u);
  EXPECT_TRUE(contains(syntax.body, "\"line\":2,\"column\":15")) << syntax.body;
  EXPECT_FALSE(fs::exists(config.routing_file));
  auto wrong = call("PUT", "/api/v1/routing",
                    R"({"routing": [{"send": [{"success": {"IP": "127.0.0.1", "PORT": "x"}}]}]})");
  EXPECT_EQ(wrong.status, 422u);
  EXPECT_TRUE(contains(wrong.body, R"("place":"routing[0].send[0].\"success\".PORT")"))
      << wrong.body;
  std::string good =
      R"({"routing": [{"send": [{"success": {"IP": "127.0.0.1", "PORT": 11112, "AETitleTo": "X"}}]}]})";
  auto saved = call("PUT", "/api/v1/routing", good);
  EXPECT_EQ(saved.status, 200u) << saved.body;
  EXPECT_EQ(saved.body, R"({"saved":true,"rules":1})");
  EXPECT_EQ(*read_text_file(config.routing_file), good);
  EXPECT_EQ(call("GET", "/api/v1/routing").body, good);
}

TEST_F(api_fixture, the_event_feed_reports_jobs_as_they_change) {
  start();
  auto feed = call("GET", "/api/v1/events");
  ASSERT_TRUE(feed.stream);
  EXPECT_EQ(feed.content_type, "text/event-stream");
  std::promise<std::optional<std::string>> first;
  feed.stream->pull([&first](std::optional<std::string> p) { first.set_value(std::move(p)); });
  EXPECT_TRUE(contains(*first.get_future().get(), ": connected"));
  ASSERT_EQ(upload("/api/v1/upload?ae=COPYAE", study_zip(1)).status, 202u);
  std::string seen;
  eventually(
      [&] {
        std::promise<std::optional<std::string>> piece;
        auto next = piece.get_future();
        feed.stream->pull(
            [&piece](std::optional<std::string> p) { piece.set_value(std::move(p)); });
        if (next.wait_for(5s) == std::future_status::ready)
          seen += next.get().value_or("");
        return contains(seen, "\"state\":\"success\"");
      },
      20s);
  EXPECT_TRUE(contains(seen, "event: job\ndata: {\"id\":1,")) << seen;
  EXPECT_TRUE(contains(seen, "\"state\":\"queued\"")) << seen;
  EXPECT_TRUE(contains(seen, "\"state\":\"running\"")) << seen;
  EXPECT_TRUE(contains(seen, "\"state\":\"success\"")) << seen;
  feed.stream->cancel();
}

TEST_F(api_fixture, users_log_in_and_viewers_may_not_change_anything) {
  auto admin_hash = web::hash_password("admin-secret");
  auto viewer_hash = web::hash_password("viewer-secret");
  ASSERT_TRUE(admin_hash && viewer_hash);
  EXPECT_EQ(admin_hash->rfind("$argon2id$", 0), 0u);
  start({{"ada", *admin_hash, "admin"}, {"vic", *viewer_hash, "viewer"}});

  EXPECT_EQ(call("GET", "/healthz").status, 200u);
  EXPECT_EQ(call("GET", "/").status, 200u); // the page itself asks for the login
  auto anonymous = call("GET", "/api/v1/jobs");
  EXPECT_EQ(anonymous.status, 401u);
  auto scrape = call("GET", "/metrics");
  EXPECT_EQ(scrape.status, 401u);
  ASSERT_EQ(scrape.headers.size(), 1u);
  EXPECT_EQ(scrape.headers[0].first, "WWW-Authenticate");

  auto viewer =
      std::map<std::string, std::string>{{"authorization", basic_auth("vic", "viewer-secret")}};
  EXPECT_EQ(call("GET", "/api/v1/jobs", {}, viewer).status, 200u);
  EXPECT_EQ(call("GET", "/metrics", {}, viewer).status, 200u);
  auto refused = call("PUT", "/api/v1/routing", R"({"routing": []})", viewer);
  EXPECT_EQ(refused.status, 403u);
  EXPECT_TRUE(contains(refused.body, "user vic (viewer) may look but not change")) << refused.body;
  EXPECT_EQ(call("GET", "/code/php/deleteStudy.php?scratchdir=1", {}, viewer).status, 403u);
  EXPECT_EQ(call("GET", "/api/v1/jobs", {}, {{"authorization", basic_auth("vic", "wrong")}}).status,
            401u);

  auto wrong = call("POST", "/api/v1/login", R"({"name": "ada", "password": "nope"})");
  EXPECT_EQ(wrong.status, 401u);
  auto login = call("POST", "/api/v1/login", R"({"name": "ada", "password": "admin-secret"})");
  ASSERT_EQ(login.status, 200u) << login.body;
  ASSERT_EQ(login.headers.size(), 1u);
  auto cookie = login.headers[0].second.substr(0, login.headers[0].second.find(';'));
  EXPECT_EQ(cookie.rfind("dcmstreams_session=", 0), 0u) << cookie;
  // A request from another site never carries the session, nor can scripts read it.
  EXPECT_TRUE(contains(login.headers[0].second, "; HttpOnly")) << login.headers[0].second;
  EXPECT_TRUE(contains(login.headers[0].second, "; SameSite=Strict")) << login.headers[0].second;
  auto who = call("GET", "/api/v1/whoami", {}, {{"cookie", cookie}});
  EXPECT_EQ(who.body, R"({"name":"ada","role":"admin","login_required":true})");
  auto saved = call("PUT", "/api/v1/routing", R"({"routing": []})", {{"cookie", cookie}});
  EXPECT_EQ(saved.status, 200u) << saved.body;
  EXPECT_EQ(call("POST", "/api/v1/logout", {}, {{"cookie", cookie}}).status, 200u);
  EXPECT_EQ(call("GET", "/api/v1/whoami", {}, {{"cookie", cookie}}).status, 401u);
}

} // namespace

TEST_F(api_fixture, the_throughput_history_of_the_last_hour_survives_a_restart) {
  // What a node before schema 6 saved before it stopped, as JSON: one sample
  // a minute ago, one from two hours ago (older than the chart's hour:
  // dropped). It is taken over into the database.
  auto minute_ago = now_ms() - 60'000;
  auto hours_ago = now_ms() - 7'200'000;
  fs::create_directories(dir / "data");
  fixtures::write_file(dir / "data" / "throughput.json",
                       R"({"interval_s":10,"samples":[{"at_ms":)" + std::to_string(hours_ago) +
                           R"(,"instances":99,"jobs":9,"sends":9},{"at_ms":)" +
                           std::to_string(minute_ago) + R"(,"instances":42,"jobs":3,"sends":1}]})");
  start();
  auto history = call("GET", "/api/v1/throughput");
  EXPECT_EQ(history.status, 200u);
  EXPECT_TRUE(contains(history.body, "\"at_ms\":" + std::to_string(minute_ago) +
                                         ",\"instances\":42,\"jobs\":3,\"sends\":1"))
      << history.body;
  EXPECT_FALSE(contains(history.body, "\"instances\":99")) << history.body;
  EXPECT_FALSE(fs::exists(dir / "data" / "throughput.json")) << "taken over once";
  auto db = database::open(store_layout{dir / "data"}.database_file());
  ASSERT_TRUE(db);
  auto kept = (*db)->throughput_since(0);
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ(kept->front().at, minute_ago);
  EXPECT_EQ(kept->front().instances, 42);
}

TEST(route_table, docs_http_md_lists_every_route_as_the_table_says) {
  // The list in docs/http.md is the table's own Markdown: a route added,
  // removed or changed without the docs fails here.
  std::ifstream in{fixtures::source_dir() / "docs" / "http.md"};
  std::string docs{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string start =
      "<!-- routes: made from web/routes.cpp by `dcmstreams routes`; a unit test keeps them "
      "equal -->\n";
  auto begin = docs.find(start);
  auto end = docs.find("<!-- end of routes -->");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  begin += start.size();
  EXPECT_EQ(docs.substr(begin, end - begin), web::routes_markdown())
      << "paste the output of `dcmstreams routes` between the markers in docs/http.md";
}

TEST(route_table, parameters_are_checked_and_methods_listed) {
  auto job = web::find_route("GET", "/api/v1/jobs/42/log", false);
  ASSERT_TRUE(job.found);
  EXPECT_EQ(job.params.at("job"), "42");
  auto wrong_method = web::find_route("PUT", "/api/v1/jobs/42", false);
  EXPECT_FALSE(wrong_method.found);
  EXPECT_EQ(wrong_method.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  auto traversal = web::find_route("GET", "/api/v1/jobs/../../etc/passwd/log", false);
  EXPECT_FALSE(traversal.found);
  ASSERT_TRUE(traversal.bad_parameter);
  EXPECT_EQ(traversal.bad_parameter->status, 400u);
  EXPECT_FALSE(web::find_route("POST", "/api/v1/test/wedge-listener", false).found);
  EXPECT_TRUE(web::find_route("POST", "/api/v1/test/wedge-listener", true).found);
  // Every route can be reached, and none hides another.
  for (auto& r : web::routes()) {
    std::string path = r.pattern;
    for (auto [name, value] : {std::pair{"{job}", "7"},
                               {"{send}", "7"},
                               {"{study}", "1.2.3"},
                               {"{series}", "1.2.4"},
                               {"{folder}", "7"},
                               {"{name}", "x"},
                               {"{file...}", "app.js"}})
      if (auto at = path.find(name); at != std::string::npos)
        path.replace(at, std::string(name).size(), value);
    auto found = web::find_route(r.method, path, true);
    EXPECT_EQ(found.found, &r) << r.method << " " << r.pattern;
  }
}
