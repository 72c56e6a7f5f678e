#include "web/api.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/foundation/log.hpp"
#include "pipeline/jobs/store.hpp"
#include "pipeline/routing/routing.hpp"
#include "web/request_guard.hpp"
#include "web/ui_assets.hpp"
#include "web/upload.hpp"
#include "web/work_pool.hpp"
#include "web/zip_stream.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <fstream>
#include <regex>
#include <thread>

namespace dcmstreams::web {

/// Work for the dispatcher actor: a closure that asks actors and answers.
struct dispatch_work {
  std::function<void(caf::event_based_actor*)> run;
};

} // namespace dcmstreams::web

// A closure cannot be serialized; it never leaves this process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<dcmstreams::web::dispatch_work>)

namespace dcmstreams::web {

namespace {

constexpr const char* component = "web";
// No HTTP request waits longer than this for an actor.
constexpr auto actor_timeout = std::chrono::seconds(30);
constexpr std::size_t log_chunk_limit = 256 * 1024;

unsigned http_status_of(ec code) {
  switch (code) {
  case ec::invalid_argument:
  case ec::invalid_dataset:
  case ec::missing_attribute:
    return 400;
  case ec::not_found:
  case ec::unknown_called_ae:
    return 404;
  case ec::caller_not_allowed:
    return 403;
  case ec::conflict:
    return 409;
  case ec::invalid_config:
    return 422;
  case ec::out_of_resources:
    return 507;
  case ec::network_error:
  case ec::peer_refused:
    return 502;
  case ec::unavailable:
    return 503;
  default:
    return 500;
  }
}

http_response failure_response(const caf::error& error) {
  if (error == caf::sec::request_timeout)
    return error_response(504, "the node did not answer within 30 s; it may be overloaded");
  return error_response(http_status_of(code_of(error)), describe(error));
}

http_response failure_response(const failure& problem) {
  return error_response(http_status_of(problem.code), problem.message);
}

/// The error handler of a request: answers with the error.
auto answer_error(responder respond) {
  return [respond](caf::error& error) { respond(failure_response(error)); };
}

std::optional<std::int64_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 18)
    return std::nullopt;
  std::int64_t id = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    id = id * 10 + (c - '0');
  }
  return id;
}

/// Epoch milliseconds, or an ISO 8601 UTC date or time: 2026-11-28,
/// 2026-11-28T10:00, 2026-11-28T10:00:00Z.
std::optional<epoch_ms> parse_time(const std::string& text) {
  if (auto number = parse_id(text))
    return *number;
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int fields = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &year, &month, &day, &hour,
                           &minute, &second);
  if (fields < 3 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
      second > 60)
    return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<epoch_ms>(timegm(&tm)) * 1000;
}

std::string query_value(const http_request& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? std::string{} : it->second;
}

/// Reads `name` as a whole number in [min, max]; `fallback` when absent.
result<std::int64_t> query_number(const http_request& request, const std::string& name,
                                  std::int64_t fallback, std::int64_t min, std::int64_t max) {
  auto text = query_value(request, name);
  if (text.empty())
    return fallback;
  auto number = parse_id(text);
  if (!number || *number < min || *number > max)
    return failure{ec::invalid_argument, "query parameter " + name + "=" + text +
                                             " must be a whole number from " + std::to_string(min) +
                                             " to " + std::to_string(max)};
  return *number;
}

result<job_filter> job_filter_of(const http_request& request) {
  job_filter filter;
  filter.stream = query_value(request, "stream");
  filter.state = query_value(request, "state");
  filter.sender = query_value(request, "sender");
  filter.text = query_value(request, "q");
  if (!filter.state.empty()) {
    if (!parse_job_state(filter.state))
      return failure{ec::invalid_argument,
                     "state=" + filter.state +
                         " is not a job state; use queued, running, success, failed, cancelled "
                         "or skipped"};
  }
  for (auto [name, field] : {std::pair{"from", &filter.from}, std::pair{"to", &filter.to}}) {
    auto text = query_value(request, name);
    if (text.empty())
      continue;
    auto time = parse_time(text);
    if (!time)
      return failure{ec::invalid_argument,
                     std::string(name) + "=" + text +
                         " is not a time; write 2026-11-28, 2026-11-28T10:00:00Z or epoch ms"};
    *field = *time;
  }
  auto limit = query_number(request, "limit", 50, 1, 1000);
  if (!limit)
    return limit.error();
  filter.limit = *limit;
  auto offset = query_number(request, "offset", 0, 0, std::int64_t{1} << 40);
  if (!offset)
    return offset.error();
  filter.offset = *offset;
  return filter;
}

/// Embeds a JSON file's text when it is valid JSON, else the text as a string.
void raw_or_string(json::writer& out, const std::string& text) {
  if (json::document::parse(text, "embedded"))
    out.raw(text);
  else
    out.value(text);
}

std::string read_small_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::string text;
  if (!in)
    return text;
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return text;
}

std::size_t count_files(const std::filesystem::path& dir) {
  std::size_t n = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error))
    if (it->is_regular_file(error))
      ++n;
  return n;
}

struct disk_usage {
  std::uint64_t free = 0;
  std::uint64_t total = 0;
};

disk_usage disk_of(const std::filesystem::path& dir) {
  struct statvfs info {};
  if (::statvfs(dir.c_str(), &info) != 0)
    return {};
  return {static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize,
          static_cast<std::uint64_t>(info.f_blocks) * info.f_frsize};
}

/// The host part of a Host header ("node:2813" gives "node", "[::1]:2813" gives "::1").
std::string host_of_header(const http_request& request) {
  auto it = request.headers.find("host");
  if (it == request.headers.end() || it->second.empty())
    return "127.0.0.1";
  auto host = it->second;
  if (host.front() == '[')
    return host.substr(1, host.find(']') - 1);
  return host.substr(0, host.rfind(':'));
}

void write_stream_json(json::writer& out, const streams::stream_definition& s,
                       const stream_stats* stats, const std::string& dicom_host,
                       std::uint16_t dicom_port) {
  out.begin_object();
  out.key("name").value(s.folder_name);
  out.key("title").value(s.name);
  out.key("description").value(s.description);
  out.key("version").value(s.version);
  out.key("ae_title").value(s.ae_title);
  out.key("license").value(s.license);
  out.key("enabled").value(s.enabled);
  out.key("kind").value(s.pipeline.empty() ? "command" : "pipeline");
  out.key("concurrency").value(s.concurrency);
  out.key("group_by").value(s.group_by == streams::grouping::series ? "series" : "study");
  out.key("timeout_s").value(s.timeout_s);
  std::uint64_t queued = stats ? stats->queued : 0;
  std::uint64_t running = stats ? stats->running : 0;
  out.key("queued").value(queued);
  out.key("running").value(running);
  out.key("running_jobs").begin_array();
  if (stats)
    for (auto id : stats->running_jobs)
      out.value(id);
  out.end_array();
  out.key("runs").value(stats ? stats->runs : std::uint64_t{0});
  out.key("mean_s").value(stats ? stats->mean_s : 0.0);
  out.key("std_s").value(stats ? stats->std_s : 0.0);
  // Until the stream has run once, nobody knows how long its queue takes.
  out.key("eta_s");
  if (stats && stats->runs > 0)
    out.value(static_cast<double>(queued + running) * stats->mean_s / std::max(1, s.concurrency));
  else
    out.null();
  out.key("storescu")
      .value("TCP_NODELAY=1 storescu -aet MYSCU -aec " + s.ae_title + " +sd +r " + dicom_host +
             " " + std::to_string(dicom_port) + " /path/to/study");
  out.key("notes").begin_array();
  for (auto& note : s.notes)
    out.value(note);
  out.end_array();
  out.end_object();
}

/// 422 for a routing.json that does not load: the whole message, and each
/// problem with its place (key path, or line and column of a syntax error).
http_response routing_problem_response(const failure& problem, const std::string& source) {
  json::writer out;
  out.begin_object();
  out.key("error").value(problem.message);
  out.key("problems").begin_array();
  std::size_t start = 0;
  static const std::regex syntax{R"(^:(\d+):(\d+): (.*)$)"};
  while (start < problem.message.size()) {
    auto end = problem.message.find('\n', start);
    if (end == std::string::npos)
      end = problem.message.size();
    std::string line = problem.message.substr(start, end - start);
    start = end + 1;
    if (line.rfind(source, 0) == 0)
      line = line.substr(source.size());
    out.begin_object();
    std::smatch match;
    if (std::regex_match(line, match, syntax)) {
      out.key("line").value(static_cast<std::int64_t>(std::stoll(match[1])));
      out.key("column").value(static_cast<std::int64_t>(std::stoll(match[2])));
      out.key("message").value(match[3].str());
    } else {
      if (line.rfind(": ", 0) == 0)
        line = line.substr(2);
      auto colon = line.find(": ");
      out.key("place").value(colon == std::string::npos ? std::string{} : line.substr(0, colon));
      out.key("message").value(colon == std::string::npos ? line : line.substr(colon + 2));
    }
    out.end_object();
  }
  out.end_array();
  out.end_object();
  return json_response(out.str(), 422);
}

/// The event feed as a chunked body: a first comment so that clients see
/// the connection is up, then each event as it comes.
class event_stream : public body_stream {
public:
  event_stream(event_hub& hub) : hub_(hub), subscription_(hub.subscribe()) {}
  ~event_stream() override { hub_.unsubscribe(subscription_); }

  void pull(std::function<void(std::optional<std::string>)> next) override {
    if (!greeted_) {
      greeted_ = true;
      next(std::string(": connected\nretry: 2000\n\n"));
      return;
    }
    subscription_->pull(std::move(next));
  }
  void cancel() override { hub_.unsubscribe(subscription_); }

private:
  event_hub& hub_;
  std::shared_ptr<event_subscription> subscription_;
  bool greeted_ = false;
};

} // namespace

/// Counts of the node's counters per `interval`, for the last hour: what the
/// UI's throughput chart draws. Kept in <data>/throughput.json as well, so a
/// restart keeps the history (the counters themselves start again at zero).
class throughput_history {
public:
  static constexpr std::chrono::seconds interval{10};
  static constexpr std::size_t kept = 360;

  throughput_history(node_metrics* counters, std::filesystem::path file)
      : counters_(counters), file_(std::move(file)) {
    load();
    if (counters_)
      sampler_ = std::thread([this] { run(); });
  }
  ~throughput_history() { stop(); }

  void stop() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stopping_ = true;
    }
    wake_.notify_all();
    if (sampler_.joinable())
      sampler_.join();
  }

  /// {"interval_s":10,"samples":[{"at":...,"instances":n,"jobs":n,"sends":n}]}, each the
  /// count within the interval before `at`.
  std::string json() {
    std::lock_guard<std::mutex> guard{mutex_};
    return json_of(samples_);
  }

private:
  struct sample {
    epoch_ms at = 0;
    double instances = 0;
    double jobs = 0;
    double sends = 0;
  };

  static std::string json_of(const std::deque<sample>& samples) {
    json::writer out;
    out.begin_object();
    out.key("interval_s").value(static_cast<std::int64_t>(interval.count()));
    out.key("samples").begin_array();
    for (auto& s : samples) {
      out.begin_object();
      out.key("at").value(iso8601(s.at));
      out.key("at_ms").value(static_cast<std::int64_t>(s.at));
      out.key("instances").value(s.instances);
      out.key("jobs").value(s.jobs);
      out.key("sends").value(s.sends);
      out.end_object();
    }
    out.end_array();
    out.end_object();
    return out.str();
  }

  static double total(const metrics::family<metrics::counter>& family) {
    double sum = 0;
    family.for_each(
        [&](const metrics::label_values&, const metrics::counter& c) { sum += c.value(); });
    return sum;
  }

  // The counters' totals so far (they start at zero with the process).
  sample totals_now() const {
    return {now_ms(), total(counters_->instances_received), total(counters_->jobs_total),
            total(counters_->sends_total)};
  }

  // The samples of the last hour from before a restart.
  void load() {
    auto text = read_text_file(file_);
    if (!text)
      return;
    auto doc = json::document::parse(*text, file_.string());
    if (!doc)
      return;
    simdjson::dom::array list;
    if (doc->root()["samples"].get(list) != simdjson::SUCCESS)
      return;
    auto oldest = now_ms() - static_cast<epoch_ms>(kept * interval.count() * 1000);
    for (auto element : list) {
      sample s;
      std::int64_t at = 0;
      if (element["at_ms"].get(at) != simdjson::SUCCESS || at < oldest)
        continue;
      s.at = at;
      for (auto [key, value] : {std::pair{"instances", &s.instances}, std::pair{"jobs", &s.jobs},
                                std::pair{"sends", &s.sends}})
        if (element[key].get(*value) != simdjson::SUCCESS)
          *value = 0;
      samples_.push_back(s);
    }
  }

  void run() {
    std::unique_lock<std::mutex> lock{mutex_};
    sample last = totals_now();
    while (!stopping_) {
      wake_.wait_for(lock, interval, [this] { return stopping_; });
      if (stopping_)
        break;
      sample now = totals_now();
      samples_.push_back(
          {now.at, now.instances - last.instances, now.jobs - last.jobs, now.sends - last.sends});
      last = now;
      if (samples_.size() > kept)
        samples_.pop_front();
      // Not synced: losing the last seconds of a chart in a crash is fine.
      auto text = json_of(samples_);
      lock.unlock();
      write_file_atomically(file_, text, false);
      lock.lock();
    }
  }

  node_metrics* counters_;
  std::filesystem::path file_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<sample> samples_;
  bool stopping_ = false;
  std::thread sampler_;
};

struct api_service::impl : std::enable_shared_from_this<api_service::impl> {
  caf::actor_system& system;
  api_settings settings;
  api_backend backend;
  authenticator auth;
  caf::actor dispatcher;
  store_layout layout;
  throughput_history history;

  request_guard_settings guard;
  // Password checks (argon2id: ~50 ms and 64 MiB each): one thread, so that
  // a flood of wrong passwords costs one core at most and never the I/O threads.
  work_pool password_pool{"password check", 1, 32};
  // Reading job folders and unpacking uploads: blocking file work.
  work_pool file_pool{"job files", 2, 64};

  impl(caf::actor_system& sys, api_settings s, api_backend b)
      : system(sys), settings(std::move(s)), backend(std::move(b)), auth(settings.config.web.users),
        layout(settings.config.data_dir),
        history(backend.counters, settings.config.data_dir / "throughput.json") {
    guard.hostnames = settings.config.web.hostnames;
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0')
      guard.hostnames.emplace_back(name);
    guard.hostnames.push_back(settings.config.web.bind);
  }

  /// Runs `work` inside the dispatcher actor.
  void ask(std::function<void(caf::event_based_actor*)> work) {
    caf::anon_send(dispatcher, std::make_shared<dispatch_work>(dispatch_work{std::move(work)}));
  }

  // -- the routes ---------------------------------------------------------------

  void handle(http_request request, responder respond);
  /// The rest of handle, once the request's user is known.
  void handle_as(const http_request& request, const user_session& user, const responder& respond);
  http_response unauthorized(const std::string& path) const;
  /// 429 while `client` must wait after wrong passwords.
  std::optional<http_response> password_backoff(const std::string& client);
  /// 503 with Retry-After: a bounded pool's queue is full.
  static http_response busy(const std::string& doing);
  void route_api(const http_request& request, const std::string& path, const user_session& user,
                 const responder& respond);
  void route_job(const http_request& request, std::int64_t id, const std::string& rest,
                 const responder& respond);
  void route_legacy(const http_request& request, const std::string& name, const responder& respond);
  void route_test_hook(const http_request& request, const std::string& hook,
                       const responder& respond);

  void get_status(const responder& respond);
  void get_streams(const http_request& request, const responder& respond);
  void get_job(std::int64_t id, const responder& respond);
  void get_log(const http_request& request, std::int64_t id, const responder& respond);
  void get_zip(std::int64_t id, const std::string& folder, const std::string& name,
               const responder& respond);
  void get_routing(const responder& respond);
  void put_routing(const http_request& request, const responder& respond);
  void ready(const responder& respond);
  void upload(const http_request& request, const std::string& called_ae,
              const std::string& calling_ae, std::size_t offset, std::size_t length,
              std::shared_ptr<mapped_file> body, const responder& respond);
  void start_upload(const http_request& request, const responder& respond);
  void legacy_process_zip(const http_request& request, const responder& respond);
  void log_in(const http_request& request, const responder& respond);
};

void api_service::impl::handle(http_request request, responder respond) {
  const auto& path = request.path;
  // Health needs no login: load balancers and supervisors ask it.
  if (path == "/healthz")
    return respond(json_response(R"({"status":"ok"})"));
  if (path == "/readyz")
    return ready(respond);
  if (auto refused = guard_request(request, guard))
    return respond(std::move(*refused));
  if (path == "/api/v1/login" && request.method == "POST")
    return log_in(request, respond);
  // The UI's files are public: the page itself asks for a login.
  if (request.method == "GET" && (path == "/" || path.rfind("/ui/", 0) == 0)) {
    auto* asset = find_ui_asset(path == "/" ? "/ui/index.html" : path);
    if (!asset)
      return respond(error_response(404, "no such page: " + path));
    http_response response;
    response.content_type = std::string(asset->content_type);
    response.body = std::string(asset->body);
    response.headers.push_back({"Cache-Control", "no-cache"});
    return respond(std::move(response));
  }
  auto who = auth.identify_quickly(request);
  if (who.user)
    return handle_as(request, *who.user, respond);
  if (!who.check)
    return respond(unauthorized(path));
  // A password to check: slow on purpose, so on the password pool, and only
  // for a client that has not just sent wrong ones.
  if (auto refused = password_backoff(request.remote))
    return respond(std::move(*refused));
  // The pools are impl's last members, joined first when it goes: `this`
  // outlives every piece of work they run.
  bool queued =
      password_pool.try_post([this, request, respond, check = std::move(*who.check)]() mutable {
        auto user = auth.check_password(check, request.remote);
        if (!user)
          return respond(unauthorized(request.path));
        handle_as(request, *user, respond);
      });
  if (!queued)
    respond(busy("checking too many passwords at once"));
}

http_response api_service::impl::unauthorized(const std::string& path) const {
  auto response = error_response(401, "log in first: POST /api/v1/login, or HTTP Basic");
  // Programs (Prometheus, curl, the old mb client) answer a Basic challenge;
  // the UI shows its own form instead of the browser's dialog.
  if (path.rfind("/api/", 0) != 0)
    response.headers.push_back({"WWW-Authenticate", "Basic realm=\"dcmstreams\""});
  return response;
}

std::optional<http_response> api_service::impl::password_backoff(const std::string& client) {
  auto wait = auth.backoff(client);
  if (wait.count() == 0)
    return std::nullopt;
  auto seconds = std::to_string((wait.count() + 999) / 1000);
  auto response = error_response(429, "too many wrong passwords from " + client + "; wait " +
                                          seconds + " s before the next try");
  response.headers.push_back({"Retry-After", seconds});
  return response;
}

http_response api_service::impl::busy(const std::string& doing) {
  auto response = error_response(503, "the node is busy " + doing + "; try again in a second");
  response.headers.push_back({"Retry-After", "1"});
  return response;
}

void api_service::impl::handle_as(const http_request& request, const user_session& user,
                                  const responder& respond) {
  const auto& path = request.path;
  if (changes_state(request) && user.role != "admin" && path != "/api/v1/logout")
    return respond(error_response(403, "user " + user.name + " (" + user.role +
                                           ") may look but not change; ask an admin"));
  if (path == "/metrics") {
    http_response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = backend.metrics ? backend.metrics->expose() : std::string{};
    return respond(std::move(response));
  }
  if (path.rfind("/api/v1/", 0) == 0)
    return route_api(request, path.substr(8), user, respond);
  if (path.rfind("/code/php/", 0) == 0)
    return route_legacy(request, path.substr(10), respond);
  // The old appliance served job logs as files: /scratch/<folder>/processing.log.
  static const std::regex scratch_log{R"(^/scratch/([0-9]+)/processing\.log$)"};
  std::smatch match;
  if (std::regex_match(path, match, scratch_log)) {
    auto id = parse_id(match[1].str());
    auto file = layout.job_dir(*id) / "processing.log";
    if (!std::filesystem::exists(file))
      return respond(error_response(404, "job " + match[1].str() + " has no processing.log"));
    http_response response;
    response.content_type = "text/plain; charset=utf-8";
    response.body = read_small_file(file);
    return respond(std::move(response));
  }
  respond(error_response(404, "no such resource: " + path + "; the API is under /api/v1/"));
}

void api_service::impl::route_api(const http_request& request, const std::string& path,
                                  const user_session& user, const responder& respond) {
  const auto& method = request.method;
  auto is = [&](const char* m, const char* p) { return method == m && path == p; };
  if (is("GET", "status"))
    return get_status(respond);
  if (is("GET", "streams"))
    return get_streams(request, respond);
  if (is("GET", "throughput"))
    return respond(json_response(history.json()));
  if (is("GET", "whoami")) {
    json::writer out;
    out.begin_object();
    out.key("name").value(user.name);
    out.key("role").value(user.role);
    out.key("login_required").value(auth.required());
    out.end_object();
    return respond(json_response(out.str()));
  }
  if (is("POST", "logout")) {
    auth.log_out(request);
    http_response response = json_response(R"({"logged_out":true})");
    response.headers.push_back(
        {"Set-Cookie", std::string(authenticator::cookie_name) +
                           "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"});
    return respond(std::move(response));
  }
  if (is("GET", "jobs")) {
    auto filter = job_filter_of(request);
    if (!filter)
      return respond(failure_response(filter.error()));
    return ask([this, filter = *filter, respond](caf::event_based_actor* self) {
      self->request(backend.job_store, actor_timeout, get_atom::value, jobs_atom::value, filter)
          .then(
              [respond, filter](job_page& page) {
                json::writer out;
                out.begin_object();
                out.key("jobs").begin_array();
                for (auto& job : page.jobs)
                  out.raw(job_json(job));
                out.end_array();
                out.key("total").value(page.total);
                out.key("limit").value(filter.limit);
                out.key("offset").value(filter.offset);
                out.end_object();
                respond(json_response(out.str()));
              },
              answer_error(respond));
    });
  }
  static const std::regex job_route{R"(^jobs/([^/]+)(/.*)?$)"};
  std::smatch match;
  if (std::regex_match(path, match, job_route)) {
    auto id = parse_id(match[1].str());
    if (!id)
      return respond(error_response(400, "\"" + match[1].str() + "\" is not a job id"));
    return route_job(request, *id, match[2].str(), respond);
  }
  if (is("GET", "studies")) {
    return ask([this, respond](caf::event_based_actor* self) {
      self->request(backend.assembler, actor_timeout, get_atom::value, pending_atom::value)
          .then(
              [respond](std::vector<pending_study>& pending) {
                json::writer out;
                out.begin_object();
                out.key("studies").begin_array();
                for (auto& p : pending) {
                  out.begin_object();
                  out.key("study_uid").value(p.key.study_uid);
                  out.key("called_ae").value(p.key.called_ae);
                  out.key("calling_ae").value(p.key.calling_ae);
                  out.key("peer").value(p.key.peer);
                  out.key("stream").value(p.stream);
                  out.key("instances").value(p.instances);
                  out.key("bytes").value(p.bytes);
                  out.key("first_arrival").value(iso8601(p.first_arrival));
                  out.key("last_arrival").value(iso8601(p.last_arrival));
                  out.end_object();
                }
                out.end_array();
                out.end_object();
                respond(json_response(out.str()));
              },
              answer_error(respond));
    });
  }
  if (backend.wedge_listener && path.rfind("test/", 0) == 0)
    return route_test_hook(request, path.substr(5), respond);
  static const std::regex complete_route{R"(^studies/(.+)/complete$)"};
  if (method == "POST" && std::regex_match(path, match, complete_route)) {
    auto uid = match[1].str();
    if (!valid_uid(uid))
      return respond(error_response(400, "\"" + uid + "\" is not a Study Instance UID"));
    return ask([this, uid, respond](caf::event_based_actor* self) {
      self->request(backend.assembler, actor_timeout, complete_atom::value, uid)
          .then(
              [respond, uid](std::uint64_t groups) {
                if (groups == 0)
                  return respond(error_response(404, "no study " + uid + " is pending"));
                respond(json_response("{\"study_uid\":\"" + uid +
                                      "\",\"completed_groups\":" + std::to_string(groups) + "}"));
              },
              answer_error(respond));
    });
  }
  if (is("GET", "routing"))
    return get_routing(respond);
  if (is("PUT", "routing"))
    return put_routing(request, respond);
  if (is("GET", "sends")) {
    auto limit = query_number(request, "limit", 100, 1, 1000);
    if (!limit)
      return respond(failure_response(limit.error()));
    return ask([this, limit = *limit, respond](caf::event_based_actor* self) {
      self->request(backend.router, actor_timeout, get_atom::value, sends_atom::value, limit)
          .then(
              [respond](std::vector<send_task>& sends) {
                json::writer out;
                out.begin_object();
                out.key("sends").begin_array();
                for (auto& s : sends)
                  out.raw(send_json(s));
                out.end_array();
                out.end_object();
                respond(json_response(out.str()));
              },
              answer_error(respond));
    });
  }
  static const std::regex send_route{R"(^sends/([^/]+)(/retry)?$)"};
  if (std::regex_match(path, match, send_route)) {
    auto id = parse_id(match[1].str());
    if (!id)
      return respond(error_response(400, "\"" + match[1].str() + "\" is not a send id"));
    if (match[2].matched && method == "POST")
      return ask([this, id = *id, respond](caf::event_based_actor* self) {
        self->request(backend.router, actor_timeout, retry_atom::value, id)
            .then([respond](send_task& task) { respond(json_response(send_json(task))); },
                  answer_error(respond));
      });
    if (!match[2].matched && method == "GET")
      return ask([this, id = *id, respond](caf::event_based_actor* self) {
        self->request(backend.job_store, actor_timeout, get_atom::value, send_atom::value, id)
            .then(
                [respond](send_detail& detail) {
                  auto task = send_json(detail.task);
                  json::writer files;
                  files.begin_array();
                  for (auto& f : detail.files) {
                    files.begin_object();
                    files.key("path").value(f.path);
                    files.key("state").value(f.state);
                    files.key("status").value(f.status);
                    files.key("message").value(f.message);
                    files.end_object();
                  }
                  files.end_array();
                  task.pop_back(); // the closing brace: the files go inside
                  respond(json_response(task + ",\"files\":" + files.str() + "}"));
                },
                answer_error(respond));
      });
  }
  if (is("POST", "upload"))
    return start_upload(request, respond);
  if (is("GET", "events")) {
    if (!backend.events)
      return respond(error_response(503, "the event feed is off"));
    http_response response;
    response.content_type = "text/event-stream";
    response.headers.push_back({"Cache-Control", "no-cache"});
    response.stream = std::make_shared<event_stream>(*backend.events);
    return respond(std::move(response));
  }
  respond(error_response(method == "GET" ? 404 : 405,
                         "no " + method + " /api/v1/" + path + "; see docs/http.md"));
}

namespace {
/// The answer to a test hook that kills an actor: `problem` when there was
/// none to kill.
auto killed_or(unsigned status, std::string problem, web::responder respond) {
  return [status, problem = std::move(problem), respond = std::move(respond)](bool killed) {
    if (!killed)
      return respond(error_response(status, problem));
    respond(json_response(R"({"killed":true})"));
  };
}
} // namespace

// Faults the supervision tests inject into a running node.
void api_service::impl::route_test_hook(const http_request& request, const std::string& hook,
                                        const responder& respond) {
  if (request.method != "POST")
    return respond(error_response(405, "test hooks take POST"));
  if (hook == "wedge-listener") {
    backend.wedge_listener();
    return respond(json_response(R"({"wedged":true})"));
  }
  static const std::string crash_prefix = "kill-actor/";
  if (hook.rfind(crash_prefix, 0) == 0 && !backend.crashable.empty()) {
    auto name = hook.substr(crash_prefix.size());
    auto found = backend.crashable.find(name);
    if (found == backend.crashable.end())
      return respond(error_response(404, "no actor " + name));
    // Its supervisor crashes it; there is none to crash while it restarts.
    return ask([supervisor = found->second, name, respond](caf::event_based_actor* self) {
      self->request(supervisor, actor_timeout, crash_atom::value)
          .then(killed_or(409, "the " + name + " actor is restarting", respond),
                answer_error(respond));
    });
  }
  static const std::string sender_prefix = "kill-sender/";
  if (hook.rfind(sender_prefix, 0) == 0) {
    auto destination = hook.substr(sender_prefix.size());
    return ask([this, destination, respond](caf::event_based_actor* self) {
      self->request(backend.router, actor_timeout, kill_atom::value, destination)
          .then(killed_or(404, "no sender to " + destination, respond), answer_error(respond));
    });
  }
  static const std::string kill_prefix = "kill-mailbox/";
  if (hook.rfind(kill_prefix, 0) == 0) {
    auto stream = hook.substr(kill_prefix.size());
    return ask([this, stream, respond](caf::event_based_actor* self) {
      self->request(backend.job_manager, actor_timeout, kill_atom::value, stream)
          .then(killed_or(404, "stream " + stream + " has no mailbox", respond),
                answer_error(respond));
    });
  }
  respond(error_response(404, "no test hook " + hook));
}

void api_service::impl::route_job(const http_request& request, std::int64_t id,
                                  const std::string& rest, const responder& respond) {
  const auto& method = request.method;
  if (rest.empty() && method == "GET")
    return get_job(id, respond);
  if (rest.empty() && method == "DELETE")
    return ask([this, id, respond](caf::event_based_actor* self) {
      self->request(backend.job_store, actor_timeout, delete_atom::value, id)
          .then(
              [respond, id](job_record&) {
                respond(json_response("{\"deleted\":" + std::to_string(id) + "}"));
              },
              answer_error(respond));
    });
  if (rest == "/log" && method == "GET")
    return get_log(request, id, respond);
  if (rest == "/output.zip" && method == "GET")
    return get_zip(id, "OUTPUT", "job-" + std::to_string(id) + "-OUTPUT", respond);
  if (rest == "/input.zip" && method == "GET")
    return get_zip(id, "INPUT", "job-" + std::to_string(id) + "-INPUT", respond);
  if (rest == "/retry" && method == "POST")
    return ask([this, id, respond](caf::event_based_actor* self) {
      self->request(backend.job_manager, actor_timeout, retry_atom::value, id)
          .then([respond](job_record& job) { respond(json_response(job_json(job))); },
                answer_error(respond));
    });
  if (rest == "/cancel" && method == "POST")
    return ask([this, id, respond](caf::event_based_actor* self) {
      self->request(backend.job_manager, actor_timeout, cancel_atom::value, id)
          .then(
              [respond, id](bool found) {
                if (!found)
                  return respond(error_response(409, "job " + std::to_string(id) +
                                                         " is neither queued nor running"));
                respond(json_response("{\"cancelled\":" + std::to_string(id) + "}"));
              },
              answer_error(respond));
    });
  // A job's resources and the methods each takes: another method is 405.
  static const std::map<std::string, std::string> allowed{
      {"", "GET, DELETE"},   {"/log", "GET"},    {"/output.zip", "GET"},
      {"/input.zip", "GET"}, {"/retry", "POST"}, {"/cancel", "POST"}};
  if (auto known = allowed.find(rest); known != allowed.end()) {
    auto response =
        error_response(405, method + " is not a method of /api/v1/jobs/" + std::to_string(id) +
                                rest + "; it takes " + known->second);
    response.headers.push_back({"Allow", known->second});
    return respond(std::move(response));
  }
  respond(error_response(404, "no " + method + " /api/v1/jobs/" + std::to_string(id) + rest));
}

void api_service::impl::get_status(const responder& respond) {
  ask([this, respond](caf::event_based_actor* self) {
    self->request(backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
        .then(
            [this, self, respond](std::vector<stream_stats>& stats) {
              self->request(backend.assembler, actor_timeout, get_atom::value, pending_atom::value)
                  .then(
                      [this, respond, stats](std::vector<pending_study>& pending) {
                        std::uint64_t queued = 0, running = 0;
                        for (auto& s : stats) {
                          queued += s.queued;
                          running += s.running;
                        }
                        auto& config = settings.config;
                        auto disk = disk_of(config.data_dir);
                        auto snapshot = backend.registry ? backend.registry->get() : nullptr;
                        json::writer out;
                        out.begin_object();
                        out.key("version").value(settings.version);
                        out.key("ae_title").value(config.ae_title);
                        out.key("started").value(iso8601(settings.started));
                        out.key("uptime_s")
                            .value(static_cast<double>(now_ms() - settings.started) / 1000.0);
                        out.key("dicom").begin_object();
                        out.key("bind").value(config.dicom.bind);
                        out.key("port").value(static_cast<std::int64_t>(config.dicom.port));
                        out.end_object();
                        out.key("data_dir").value(config.data_dir.string());
                        out.key("problems").begin_array();
                        if (backend.readiness)
                          for (auto& problem : backend.readiness->problems())
                            out.value(problem);
                        out.end_array();
                        out.key("disk").begin_object();
                        out.key("free_bytes").value(disk.free);
                        out.key("total_bytes").value(disk.total);
                        out.key("reserve_bytes")
                            .value(config.storage.reserve_free_mb * 1024 * 1024);
                        out.end_object();
                        out.key("streams").value(
                            static_cast<std::uint64_t>(snapshot ? snapshot->streams.size() : 0));
                        out.key("queued").value(queued);
                        out.key("running").value(running);
                        out.key("pending_studies")
                            .value(static_cast<std::uint64_t>(pending.size()));
                        out.end_object();
                        respond(json_response(out.str()));
                      },
                      answer_error(respond));
            },
            answer_error(respond));
  });
}

void api_service::impl::get_streams(const http_request& request, const responder& respond) {
  auto host = host_of_header(request);
  ask([this, host, respond](caf::event_based_actor* self) {
    self->request(backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
        .then(
            [this, host, respond](std::vector<stream_stats>& stats) {
              auto snapshot = backend.registry->get();
              json::writer out;
              out.begin_object();
              out.key("streams").begin_array();
              for (auto& s : snapshot->streams) {
                auto it = std::find_if(stats.begin(), stats.end(), [&](const stream_stats& x) {
                  return x.stream == s.folder_name;
                });
                write_stream_json(out, s, it == stats.end() ? nullptr : &*it, host,
                                  settings.config.dicom.port);
              }
              out.end_array();
              out.key("problems").begin_array();
              for (auto& p : snapshot->problems)
                out.value(p);
              out.end_array();
              out.end_object();
              respond(json_response(out.str()));
            },
            answer_error(respond));
  });
}

void api_service::impl::get_job(std::int64_t id, const responder& respond) {
  ask([this, id, respond](caf::event_based_actor* self) {
    self->request(backend.job_store, actor_timeout, get_atom::value, job_atom::value, id)
        .then(
            [this, self, id, respond](job_record& job) {
              self->request(backend.job_store, actor_timeout, get_atom::value, sends_atom::value,
                            id)
                  .then(
                      [this, job, respond](std::vector<send_task>& sends) {
                        // The job's small files are read off the actor
                        // threads, on the bounded file pool.
                        bool queued =
                            file_pool.try_post([this, job, sends = std::move(sends), respond] {
                              auto dir = layout.job_dir(job.id);
                              auto body = job_json(job);
                              body.pop_back();
                              json::writer extra;
                              extra.begin_object();
                              auto proc = read_small_file(dir / "proc.json");
                              extra.key("outcome");
                              if (proc.empty())
                                extra.null();
                              else
                                raw_or_string(extra, proc);
                              auto result_file = read_small_file(dir / "OUTPUT" / "result.json");
                              extra.key("result");
                              if (result_file.empty())
                                extra.null();
                              else
                                raw_or_string(extra, result_file);
                              std::error_code error;
                              auto log_size =
                                  std::filesystem::file_size(dir / "processing.log", error);
                              extra.key("log_bytes")
                                  .value(static_cast<std::uint64_t>(error ? 0 : log_size));
                              extra.key("input_files")
                                  .value(static_cast<std::uint64_t>(count_files(dir / "INPUT")));
                              extra.key("output_files")
                                  .value(static_cast<std::uint64_t>(count_files(dir / "OUTPUT")));
                              extra.key("sends").begin_array();
                              for (auto& s : sends)
                                extra.raw(send_json(s));
                              extra.end_array();
                              extra.end_object();
                              respond(json_response(body + "," + extra.str().substr(1)));
                            });
                        if (!queued)
                          respond(busy("reading job folders"));
                      },
                      answer_error(respond));
            },
            answer_error(respond));
  });
}

void api_service::impl::get_log(const http_request& request, std::int64_t id,
                                const responder& respond) {
  auto offset = query_number(request, "offset", 0, 0, std::int64_t{1} << 50);
  if (!offset)
    return respond(failure_response(offset.error()));
  auto dir = layout.job_dir(id);
  if (!std::filesystem::exists(dir))
    return respond(error_response(404, "no job " + std::to_string(id)));
  auto file = dir / "processing.log";
  std::error_code error;
  auto size = std::filesystem::exists(file) ? std::filesystem::file_size(file, error) : 0;
  auto start = std::min<std::uint64_t>(static_cast<std::uint64_t>(*offset), size);
  auto length = std::min<std::uint64_t>(size - start, log_chunk_limit);
  std::string text(length, '\0');
  if (length > 0) {
    std::ifstream in{file, std::ios::binary};
    in.seekg(static_cast<std::streamoff>(start));
    in.read(text.data(), static_cast<std::streamsize>(length));
    text.resize(static_cast<std::size_t>(in.gcount()));
  }
  json::writer out;
  out.begin_object();
  out.key("offset").value(static_cast<std::uint64_t>(start));
  out.key("next_offset").value(static_cast<std::uint64_t>(start + text.size()));
  out.key("size").value(static_cast<std::uint64_t>(size));
  out.key("text").value(text);
  out.end_object();
  respond(json_response(out.str()));
}

void api_service::impl::get_zip(std::int64_t id, const std::string& folder, const std::string& name,
                                const responder& respond) {
  auto dir = layout.job_dir(id);
  if (!std::filesystem::is_directory(dir))
    return respond(error_response(404, "no job " + std::to_string(id)));
  http_response response;
  response.content_type = "application/zip";
  response.headers.push_back({"Content-Disposition", "attachment; filename=\"" + name + ".zip\""});
  response.stream = std::make_shared<zip_stream>(dir / folder, name);
  respond(std::move(response));
}

void api_service::impl::get_routing(const responder& respond) {
  auto& file = settings.config.routing_file;
  if (!std::filesystem::exists(file))
    return respond(json_response("{\n  \"routing\": []\n}\n"));
  auto text = read_text_file(file);
  if (!text)
    return respond(failure_response(text.error()));
  respond(json_response(*text));
}

void api_service::impl::put_routing(const http_request& request, const responder& respond) {
  auto& file = settings.config.routing_file;
  auto source = file.filename().string();
  auto table = parse_routing(request.body, source, settings.config.destinations);
  if (!table)
    return respond(routing_problem_response(table.error(), source));
  if (auto problem = write_file_atomically(file, request.body, true))
    return respond(failure_response(*problem));
  // The router notices the new file on its next look (every second); asking
  // it now makes the change take effect before this answer arrives.
  if (backend.router)
    caf::anon_send(backend.router, tick_atom::value);
  log::info(component,
            "routing.json replaced over HTTP: " + std::to_string(table->rules.size()) + " rules");
  respond(json_response("{\"saved\":true,\"rules\":" + std::to_string(table->rules.size()) + "}"));
}

void api_service::impl::ready(const responder& respond) {
  std::vector<std::string> problems;
  if (backend.listener_problem) {
    auto problem = backend.listener_problem();
    if (!problem.empty())
      problems.push_back(problem);
  }
  if (backend.readiness)
    for (auto& problem : backend.readiness->problems())
      problems.push_back(problem);
  auto disk = disk_of(settings.config.data_dir);
  auto reserve = settings.config.storage.reserve_free_mb * 1024 * 1024;
  if (disk.free < reserve)
    problems.push_back("the data disk has " + std::to_string(disk.free / (1024 * 1024)) +
                       " MB free, below the reserve of " +
                       std::to_string(settings.config.storage.reserve_free_mb) + " MB");
  ask([this, problems, respond](caf::event_based_actor* self) {
    auto answer = [respond](std::vector<std::string> all) {
      json::writer out;
      out.begin_object();
      out.key("ready").value(all.empty());
      out.key("problems").begin_array();
      for (auto& p : all)
        out.value(p);
      out.end_array();
      out.end_object();
      respond(json_response(out.str(), all.empty() ? 200 : 503));
    };
    self->request(backend.job_store, std::chrono::seconds(5), ping_atom::value)
        .then([answer, problems](bool) { answer(problems); },
              [answer, problems](caf::error& error) mutable {
                problems.push_back("the database does not take writes: " + describe(error));
                answer(problems);
              });
  });
}

void api_service::impl::start_upload(const http_request& request, const responder& respond) {
  auto ae = query_value(request, "ae");
  if (ae.empty())
    return respond(error_response(400, "say which stream: POST /api/v1/upload?ae=<AE title>"));
  if (request.body_file.empty())
    return respond(error_response(400, "the upload has no body; send the ZIP as the body"));
  auto body = mapped_file::open(request.body_file);
  std::error_code ignored;
  std::filesystem::remove(request.body_file, ignored); // the mapping keeps the bytes
  if (!body)
    return respond(failure_response(body.error()));
  auto mapped = std::make_shared<mapped_file>(std::move(*body));
  auto calling = query_value(request, "sender");
  upload(request, ae, calling.empty() ? "WEBUPLOAD" : calling, 0, mapped->bytes().size(), mapped,
         respond);
}

void api_service::impl::upload(const http_request& request, const std::string& called_ae,
                               const std::string& calling_ae, std::size_t offset,
                               std::size_t length, std::shared_ptr<mapped_file> body,
                               const responder& respond) {
  auto snapshot = backend.registry->get();
  auto* stream = snapshot->find_by_ae(called_ae);
  if (!stream || !stream->enabled)
    return respond(error_response(404, "no enabled stream has the AE title \"" + called_ae +
                                           "\"; GET /api/v1/streams lists them"));
  if (check_ae_title(calling_ae))
    return respond(error_response(400, "sender \"" + calling_ae + "\" is not a valid AE title"));
  auto disk = disk_of(settings.config.data_dir);
  if (disk.free < settings.config.storage.reserve_free_mb * 1024 * 1024 + length)
    return respond(error_response(507, "the data disk is too full for this upload"));
  upload_source source{called_ae, calling_ae, request.remote};
  bool durable = settings.config.storage.sync != sync_mode::none;
  // Unpacking writes every file durably, on the bounded file pool; then the
  // assembler learns of the files and completes their studies at once.
  bool queued = file_pool.try_post([this, source, offset, length, body, durable, respond] {
    auto unpacked =
        unpack_upload(body->bytes().data() + offset, length, settings.config.data_dir, source,
                      durable, settings.config.storage.reserve_free_mb * 1024 * 1024);
    if (!unpacked)
      return respond(failure_response(unpacked.error()));
    for (auto& [key, instance] : unpacked->instances)
      caf::anon_send(backend.assembler, arrived_atom::value, key, instance);
    auto studies = unpacked->studies;
    auto count = unpacked->instances.size();
    auto skipped = unpacked->skipped;
    log::info(component, "upload from " + source.peer + " for " + source.called_ae + ": " +
                             std::to_string(count) + " instances in " +
                             std::to_string(studies.size()) + " studies, " +
                             std::to_string(skipped.size()) + " entries skipped");
    ask([this, studies, count, skipped, respond](caf::event_based_actor*) {
      // Sent after the arrivals from the upload thread: the assembler's
      // mailbox is first in, first out, so it knows every file by now. The
      // answer (groups completed) is not needed: anonymous sends drop it.
      for (auto& key : studies)
        caf::anon_send(backend.assembler, complete_atom::value, key.study_uid);
      json::writer out;
      out.begin_object();
      out.key("instances").value(static_cast<std::uint64_t>(count));
      out.key("studies").begin_array();
      for (auto& key : studies)
        out.value(key.study_uid);
      out.end_array();
      out.key("skipped").begin_array();
      for (auto& s : skipped)
        out.value(s);
      out.end_array();
      out.end_object();
      respond(json_response(out.str(), 202));
    });
  });
  if (!queued)
    respond(busy("reading job folders"));
}

void api_service::impl::log_in(const http_request& request, const responder& respond) {
  auto doc = json::document::parse(request.body, "the login request");
  if (!doc)
    return respond(error_response(400, doc.error().message));
  std::string name, password;
  auto root = doc->root();
  std::string_view text;
  if (root["name"].get(text) == simdjson::SUCCESS)
    name = std::string(text);
  if (root["password"].get(text) == simdjson::SUCCESS)
    password = std::string(text);
  if (!auth.required())
    return respond(json_response(R"({"name":"local","role":"admin"})"));
  if (auto refused = password_backoff(request.remote))
    return respond(std::move(*refused));
  bool queued = password_pool.try_post([this, name, password, client = request.remote, respond] {
    auto token = auth.log_in(name, password, client);
    if (!token)
      return respond(error_response(401, "wrong user name or password"));
    http_response response = json_response("{\"name\":\"" + json::escape(name) + "\"}");
    response.headers.push_back({"Set-Cookie", std::string(authenticator::cookie_name) + "=" +
                                                  *token + "; Path=/; HttpOnly; SameSite=Strict"});
    respond(std::move(response));
  });
  if (!queued)
    respond(busy("checking too many passwords at once"));
}

// -- the old appliance's endpoints (docs/http.md maps each field) --------------------

void api_service::impl::route_legacy(const http_request& request, const std::string& name,
                                     const responder& respond) {
  if (name == "getInstalledBuckets.php") {
    auto snapshot = backend.registry->get();
    json::writer out;
    out.begin_array();
    for (auto& s : snapshot->streams) {
      out.begin_object();
      out.key("AETitle").value(s.ae_title);
      out.key("Description").value(s.description);
      out.key("License").value(s.license);
      out.key("Name").value(s.name);
      out.key("Version").value(s.version);
      out.end_object();
    }
    out.end_array();
    return respond(json_response(out.str()));
  }
  if (name == "getStatus.php")
    return ask([this, respond](caf::event_based_actor* self) {
      self->request(backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
          .then(
              [this, respond](std::vector<stream_stats>& stats) {
                auto snapshot = backend.registry->get();
                json::writer out;
                out.begin_array();
                for (auto& s : snapshot->streams) {
                  auto it = std::find_if(stats.begin(), stats.end(), [&](const stream_stats& x) {
                    return x.stream == s.folder_name;
                  });
                  out.begin_array();
                  out.value(s.ae_title);
                  out.value(std::to_string(it == stats.end() ? 0 : it->running));
                  out.value(std::to_string(it == stats.end() ? 0 : it->queued));
                  out.value(std::to_string(s.concurrency));
                  out.end_array();
                }
                out.end_array();
                respond(json_response(out.str()));
              },
              answer_error(respond));
    });
  if (name == "getScratch.php") {
    job_filter filter;
    filter.limit = 1000;
    return ask([this, filter, respond](caf::event_based_actor* self) {
      self->request(backend.job_store, actor_timeout, get_atom::value, jobs_atom::value, filter)
          .then(
              [respond](job_page& page) {
                // Every value a string, as the old client searches strings only.
                json::writer out;
                out.begin_array();
                for (auto& job : page.jobs) {
                  out.begin_object();
                  out.key("scratchdir").value(std::to_string(job.id));
                  out.key("pid").value(std::to_string(job.id));
                  out.key("AETitleCalled").value(job.called_ae);
                  out.key("AETitleCaller").value(job.calling_ae);
                  out.key("CallerIP").value(job.peer);
                  out.key("StudyInstanceUID").value(job.study_uid);
                  out.key("received").value(iso8601(job.received));
                  out.key("stream").value(job.stream);
                  out.key("state").value(to_string(job.state));
                  out.key("instances").value(std::to_string(job.instances));
                  out.end_object();
                }
                out.end_array();
                respond(json_response(out.str()));
              },
              answer_error(respond));
    });
  }
  if (name == "getOutputZip.php") {
    auto folder = query_value(request, "folder");
    auto id = parse_id(folder);
    if (!id)
      return respond(error_response(400, "folder=" + folder + " is not a job (scratchdir)"));
    return get_zip(*id, "OUTPUT", folder, respond);
  }
  if (name == "deleteStudy.php") {
    auto folder = query_value(request, "scratchdir");
    auto id = parse_id(folder);
    if (!id)
      return respond(error_response(400, "scratchdir=" + folder + " is not a job"));
    return ask([this, id = *id, respond](caf::event_based_actor* self) {
      self->request(backend.job_store, actor_timeout, delete_atom::value, id)
          .then(
              [respond, id](job_record&) {
                http_response response;
                response.content_type = "text/plain; charset=utf-8";
                response.body = "deleted " + std::to_string(id) + "\n";
                respond(std::move(response));
              },
              answer_error(respond));
    });
  }
  if (name == "processZip.php" && request.method == "POST")
    return legacy_process_zip(request, respond);
  respond(error_response(404, "no /code/php/" + name + "; see docs/http.md for the old endpoints"));
}

void api_service::impl::legacy_process_zip(const http_request& request, const responder& respond) {
  if (request.body_file.empty())
    return respond(error_response(400, "processZip.php needs a multipart/form-data body"));
  auto body = mapped_file::open(request.body_file);
  std::error_code ignored;
  std::filesystem::remove(request.body_file, ignored);
  if (!body)
    return respond(failure_response(body.error()));
  auto mapped = std::make_shared<mapped_file>(std::move(*body));
  auto type = request.headers.count("content-type") ? request.headers.at("content-type") : "";
  auto parts = parse_multipart(mapped->bytes(), type);
  std::string ae, sender;
  const form_part* file = nullptr;
  for (auto& part : parts) {
    auto value = std::string(mapped->bytes().substr(part.offset, part.length));
    if (part.name == "aetitle")
      ae = value;
    else if (part.name == "sender")
      sender = value;
    else if (part.name == "theFile")
      file = &part;
  }
  if (!file || ae.empty())
    return respond(
        error_response(400, "processZip.php needs the form fields aetitle and theFile (the ZIP)"));
  // The old client's sender is free text ("hauke:project"); an AE title
  // holds at most 16 characters without backslashes.
  std::string calling;
  for (char c : sender)
    if (calling.size() < 16 && c != '\\' && c >= 32 && c < 127)
      calling += c;
  upload(request, ae, calling.empty() ? "WEBUPLOAD" : calling, file->offset, file->length, mapped,
         respond);
}

// -- the service ---------------------------------------------------------------------

api_service::api_service(caf::actor_system& system, api_settings settings, api_backend backend)
    : impl_(std::make_shared<impl>(system, std::move(settings), std::move(backend))) {
  impl_->dispatcher = system.spawn([](caf::event_based_actor* self) -> caf::behavior {
    // Anything else is dropped silently: an error sent back to its sender
    // could stop a typed actor that does not expect it.
    self->set_default_handler(caf::drop);
    return {[self](const std::shared_ptr<dispatch_work>& work) { work->run(self); }};
  });
}

api_service::~api_service() {
  stop();
}

void api_service::handle(http_request request, responder respond) {
  auto fallback = respond;
  try {
    impl_->handle(std::move(request), std::move(respond));
  } catch (const std::exception& e) {
    // A handler bug must not take the server down; the client learns of it.
    log::error(component, std::string("request failed: ") + e.what());
    fallback(error_response(500, std::string("the request failed: ") + e.what()));
  }
}

void api_service::stop() {
  impl_->history.stop();
  if (impl_->dispatcher) {
    caf::anon_send_exit(impl_->dispatcher, caf::exit_reason::user_shutdown);
    impl_->dispatcher = nullptr;
  }
}

} // namespace dcmstreams::web
