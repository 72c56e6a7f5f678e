#include "web/routes.hpp"

#include "pipeline/jobs/store.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"

#include <sstream>

namespace dcmstreams::web {

const std::vector<route>& routes() {
  using a = access;
  // clang-format off
  static const std::vector<route> table{
    {"GET",    "/healthz",                          a::open,   "the process is up (no login)", get_health},
    {"GET",    "/readyz",                           a::open,   "the node takes instances: listener, database, disk, streams and routing fine (503 with the problems)", get_ready},
    {"GET",    "/",                                 a::guest,  "the web UI", get_ui_file},
    {"GET",    "/ui/{file...}",                     a::guest,  "the web UI's files", get_ui_file},
    {"POST",   "/api/v1/login",                     a::guest,  "log in with {\"name\", \"password\"}: a session cookie", log_in},
    {"POST",   "/api/v1/logout",                    a::viewer, "end the session", log_out},
    {"GET",    "/api/v1/whoami",                    a::viewer, "the user, the role, and whether a login is required", get_whoami},
    {"GET",    "/metrics",                          a::viewer, "Prometheus metrics", get_metrics},
    {"GET",    "/api/v1/status",                    a::viewer, "version, uptime, DICOM port, disk, queue and problems", get_status},
    {"GET",    "/api/v1/throughput",                a::viewer, "instances, jobs and sends per 10 s for the last hour", get_throughput},
    {"GET",    "/api/v1/events",                    a::viewer, "the live event feed (server-sent events: job, send, studies, deleted)", get_events},
    {"GET",    "/api/v1/workers",                   a::viewer, "the cluster's workers: name, state (joined, lost), slots, running jobs, last heartbeat", list_workers},
    {"GET",    "/api/v1/streams",                   a::viewer, "the streams, their queues, run times and a storescu line each", get_streams},
    {"GET",    "/api/v1/jobs",                      a::viewer, "jobs, newest first; ?stream= state= sender= q= from= to= limit= offset=", list_jobs},
    {"GET",    "/api/v1/jobs/{job}",                a::viewer, "one job with its outcome, result.json, file counts and sends", get_job},
    {"DELETE", "/api/v1/jobs/{job}",                a::admin,  "delete a finished job and its folder", delete_job},
    {"GET",    "/api/v1/jobs/{job}/log",            a::viewer, "processing.log from ?offset= (at most 256 KiB a call)", get_job_log},
    {"GET",    "/api/v1/jobs/{job}/output.zip",     a::viewer, "OUTPUT/ as a ZIP", get_job_output_zip},
    {"GET",    "/api/v1/jobs/{job}/input.zip",      a::viewer, "INPUT/ as a ZIP", get_job_input_zip},
    {"POST",   "/api/v1/jobs/{job}/retry",          a::admin,  "run a finished job again from a clean OUTPUT", retry_job},
    {"POST",   "/api/v1/jobs/{job}/cancel",         a::admin,  "cancel a queued or running job", cancel_job},
    {"GET",    "/api/v1/jobs/{job}/series",         a::viewer, "the image series of INPUT and OUTPUT: slices, windows, or why one cannot be shown", list_job_series},
    {"GET",    "/api/v1/jobs/{job}/series/{series}/preview.png", a::viewer, "one slice of a series as a PNG through a window (query: folder, slice, window, size)", get_series_preview},
    {"GET",    "/api/v1/jobs/{job}/routing",        a::viewer, "dry run: the sends the routing rules would make of the job now", preview_job_routing},
    {"POST",   "/api/v1/jobs/{job}/send",           a::admin,  "send the job's OUTPUT or INPUT to a configured destination now", send_job_to},
    {"GET",    "/api/v1/studies",                   a::viewer, "studies still arriving (pending), per sender", list_studies},
    {"POST",   "/api/v1/studies/{study}/complete",  a::admin,  "complete a pending study now instead of after its quiet period", complete_study},
    {"POST",   "/api/v1/upload",                    a::admin,  "a ZIP of DICOM files as the body for the stream ?ae= (as ?sender=): 202", upload_zip},
    {"POST",   "/dicomweb/{ae}/studies",            a::admin,  "STOW-RS: stores the multipart/related application/dicom instances for the stream with this AE title", store_instances},
    {"GET",    "/api/v1/sends",                     a::viewer, "recent sends, newest first; ?limit=", list_sends},
    {"GET",    "/api/v1/sends/{send}",              a::viewer, "one send with each file's outcome", get_send},
    {"POST",   "/api/v1/sends/{send}/retry",        a::admin,  "send a failed send's unstored files again", retry_send},
    {"GET",    "/api/v1/pseudonyms",                a::admin,  "what a pseudonym stands for: ?value= a UID or ANON-... patient (deidentify.keep_mapping)", get_pseudonym},
    {"GET",    "/api/v1/routing",                   a::viewer, "routing.json as it is", get_routing},
    {"PUT",    "/api/v1/routing",                   a::admin,  "replace routing.json (checked first: 422 with each problem's place)", put_routing},
    {"GET",    "/code/php/getInstalledBuckets.php", a::viewer, "old appliance: the streams", get_installed_buckets},
    {"GET",    "/code/php/getStatus.php",           a::viewer, "old appliance: running and queued jobs per stream", get_legacy_status},
    {"GET",    "/code/php/getScratch.php",          a::viewer, "old appliance: the last 1000 jobs", get_scratch},
    {"GET",    "/code/php/getOutputZip.php",        a::viewer, "old appliance: OUTPUT/ of job ?folder= as a ZIP", get_output_zip_legacy},
    {"GET",    "/code/php/deleteStudy.php",         a::admin,  "old appliance: delete job ?scratchdir=", delete_study_legacy},
    {"POST",   "/code/php/processZip.php",          a::admin,  "old appliance: upload a ZIP (form fields aetitle, sender, theFile)", process_zip_legacy},
    {"GET",    "/scratch/{folder}/processing.log",  a::viewer, "old appliance: a job's processing.log", get_scratch_log},
    {"POST",   "/api/v1/test/wedge-listener",       a::admin,  "test hook: the DICOM listener stops answering", wedge_listener, true},
    {"POST",   "/api/v1/test/kill-actor/{name}",    a::admin,  "test hook: a supervised actor stops as a crash would", kill_actor, true},
    {"POST",   "/api/v1/test/kill-sender/{name}",   a::admin,  "test hook: the senders to a destination crash", kill_sender, true},
    {"POST",   "/api/v1/test/kill-mailbox/{name}",  a::admin,  "test hook: a stream's mailbox crashes", kill_mailbox, true},
    {"POST",   "/api/v1/test/stall-job-store/{seconds}", a::admin, "test hook: job creation stalls for that many seconds", stall_job_store, true},
  };
  // clang-format on
  return table;
}

const char* to_string(access who) {
  switch (who) {
  case access::open:
    return "anyone";
  case access::guest:
    return "anyone (Host and cross-site checks)";
  case access::viewer:
    return "viewer";
  case access::admin:
    return "admin";
  }
  return "?";
}

namespace {

std::vector<std::string> segments_of(const std::string& path) {
  std::vector<std::string> segments;
  std::size_t start = 1; // paths start with '/'
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos)
      end = path.size();
    segments.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

/// Checks a parameter's value against its name: the answer when it is not
/// what its resource takes, none when it is fine or when a wrong value
/// should read as "no such resource".
enum class verdict { fine, no_match, bad };

verdict check_parameter(const std::string& name, const std::string& value,
                        std::optional<http_response>& bad) {
  auto refuse = [&](const std::string& what) {
    bad = error_response(400, "\"" + value + "\" is not " + what);
    return verdict::bad;
  };
  if (name == "job")
    return parse_id(value) ? verdict::fine : refuse("a job id");
  if (name == "send")
    return parse_id(value) ? verdict::fine : refuse("a send id");
  if (name == "study")
    return valid_uid(value) ? verdict::fine : refuse("a Study Instance UID");
  if (name == "series")
    return valid_uid(value) ? verdict::fine : refuse("a Series Instance UID");
  if (name == "folder")
    return parse_id(value) ? verdict::fine : verdict::no_match;
  return value.empty() ? verdict::no_match : verdict::fine;
}

/// Matches `path` against one pattern; fills `params`, or `bad` when the
/// literal segments before a wrong parameter match.
bool matches(const route& r, const std::vector<std::string>& path,
             std::map<std::string, std::string>& params, std::optional<http_response>& bad) {
  auto pattern = segments_of(r.pattern);
  params.clear();
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    auto& part = pattern[i];
    bool parameter = part.size() > 2 && part.front() == '{' && part.back() == '}';
    if (!parameter) {
      if (i >= path.size() || path[i] != part)
        return false;
      continue;
    }
    auto name = part.substr(1, part.size() - 2);
    if (name.size() > 3 && name.compare(name.size() - 3, 3, "...") == 0) {
      // The rest of the path, one segment or more.
      if (i >= path.size())
        return false;
      std::string rest;
      for (std::size_t j = i; j < path.size(); ++j)
        rest += (j == i ? "" : "/") + path[j];
      params[name.substr(0, name.size() - 3)] = rest;
      return true;
    }
    if (i >= path.size())
      return false;
    std::optional<http_response> problem;
    auto checked = check_parameter(name, path[i], problem);
    if (checked == verdict::bad && !bad)
      bad = std::move(problem);
    if (checked != verdict::fine)
      return false;
    params[name] = path[i];
  }
  return pattern.size() == path.size();
}

} // namespace

route_lookup find_route(const std::string& method, const std::string& path, bool test_hooks) {
  route_lookup lookup;
  auto parts = segments_of(path);
  std::map<std::string, std::string> params;
  for (auto& r : routes()) {
    if (r.test_hook && !test_hooks)
      continue;
    if (!matches(r, parts, params, lookup.bad_parameter))
      continue;
    if (method == r.method) {
      lookup.found = &r;
      lookup.params = params;
      return lookup;
    }
    lookup.allowed.push_back(r.method);
  }
  return lookup;
}

std::string routes_markdown() {
  std::ostringstream out;
  out << "| Method | Path | Who | What |\n|---|---|---|---|\n";
  for (auto& r : routes())
    out << "| " << r.method << " | `" << r.pattern << "` | " << to_string(r.who) << " | "
        << r.summary << " |\n";
  return out.str();
}

} // namespace dcmstreams::web
