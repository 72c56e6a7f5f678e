// Jobs: the list, one job with what it produced, its log and folders as
// ZIPs, and what an admin may do to it (delete, retry, cancel).

#include "pipeline/foundation/files.hpp"
#include "pipeline/jobs/views.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/zip_stream.hpp"

#include <ctime>
#include <fstream>

namespace dcmstreams::web {

namespace {

constexpr std::size_t log_chunk_limit = 256 * 1024;

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

result<job_filter> job_filter_of(const http_request& request) {
  job_filter filter;
  filter.stream = query_value(request, "stream");
  filter.state = query_value(request, "state");
  filter.sender = query_value(request, "sender");
  filter.text = query_value(request, "q");
  if (!filter.state.empty() && !parse_job_state(filter.state))
    return failure{ec::invalid_argument,
                   "state=" + filter.state +
                       " is not a job state; use queued, running, success, failed, cancelled "
                       "or skipped"};
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

std::string read_small_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::string text;
  if (!in)
    return text;
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return text;
}

/// A small JSON file of the job as a value: null when absent, its text as a
/// string when it is not valid JSON (a stream program wrote it).
json::value embedded_file(const std::filesystem::path& path) {
  auto text = read_small_file(path);
  if (text.empty())
    return nullptr;
  auto parsed = json::parse(text, path.string());
  return parsed ? std::move(*parsed) : json::value(text);
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

/// The job as GET /api/v1/jobs/{id} shows it: the job's view, then what its
/// folder holds. Reads files: call on the file pool.
json::value job_detail(const store_layout& layout, const job_record& job,
                       const std::vector<send_task>& sends, bool with_patient) {
  auto dir = layout.job_dir(job.id);
  auto body = job_view(job, with_patient);
  body["outcome"] = embedded_file(dir / "proc.json");
  body["result"] = embedded_file(dir / "OUTPUT" / "result.json");
  // A kernel pipeline's phase while it runs (pipeline/execution/job_runner.cpp).
  if (job.state == job_state::running)
    body["progress"] = embedded_file(dir / "progress.json");
  std::error_code error;
  auto log_size = std::filesystem::file_size(dir / "processing.log", error);
  body["log_bytes"] = static_cast<std::uint64_t>(error ? 0 : log_size);
  body["input_files"] = count_files(dir / "INPUT");
  body["output_files"] = count_files(dir / "OUTPUT");
  auto list = json::value::array();
  for (auto& s : sends)
    list.push_back(send_view(s));
  body["sends"] = std::move(list);
  return body;
}

/// Whether this caller sees patients masked (web.mask_patient_for_viewers).
bool patient_masked(const api_context& api, const route_call& call) {
  return api.settings.config.web.mask_patient_for_viewers && call.user &&
         call.user->role == "viewer";
}

} // namespace

void list_jobs(api_context& api, const route_call& call) {
  auto filter = job_filter_of(call.request);
  if (!filter)
    return call.respond(failure_response(filter.error()));
  bool masked = patient_masked(api, call);
  filter->search_patient = !masked;
  api.ask([&api, filter = *filter, masked, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, jobs_atom::value, filter)
        .then(
            [respond, filter, masked](job_page& page) {
              auto jobs = json::value::array();
              for (auto& job : page.jobs)
                jobs.push_back(job_view(job, !masked));
              json::value body = {{"jobs", std::move(jobs)},
                                  {"total", page.total},
                                  {"limit", filter.limit},
                                  {"offset", filter.offset}};
              respond(json_response(json::dump(body)));
            },
            answer_error(respond));
  });
}

void get_job(api_context& api, const route_call& call) {
  bool masked = patient_masked(api, call);
  api.ask(
      [&api, id = call.id("job"), masked, respond = call.respond](caf::event_based_actor* self) {
        self->request(api.backend.job_store, actor_timeout, get_atom::value, job_atom::value, id)
            .then(
                [&api, self, id, masked, respond](job_record& job) {
                  self->request(api.backend.job_store, actor_timeout, get_atom::value,
                                sends_atom::value, id)
                      .then(
                          [&api, job, masked, respond](std::vector<send_task>& sends) {
                            // The job's small files are read off the actor
                            // threads, on the bounded file pool.
                            bool queued = api.file_pool.try_post(
                                [&api, job, sends = std::move(sends), masked, respond] {
                                  respond(json_response(
                                      json::dump(job_detail(api.layout, job, sends, !masked))));
                                });
                            if (!queued)
                              respond(busy("reading job folders"));
                          },
                          answer_error(respond));
                },
                answer_error(respond));
      });
}

void delete_job(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("job"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, delete_atom::value, id)
        .then(
            [respond, id](job_record&) {
              respond(json_response(json::dump({{"deleted", id}})));
            },
            answer_error(respond));
  });
}

void get_job_log(api_context& api, const route_call& call) {
  auto id = call.id("job");
  auto offset = query_number(call.request, "offset", 0, 0, std::int64_t{1} << 50);
  if (!offset)
    return call.respond(failure_response(offset.error()));
  auto dir = api.layout.job_dir(id);
  if (!std::filesystem::exists(dir))
    return call.respond(error_response(404, "no job " + std::to_string(id)));
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
  json::value body = {{"offset", start},
                      {"next_offset", start + text.size()},
                      {"size", static_cast<std::uint64_t>(size)},
                      {"text", text}};
  call.respond(json_response(json::dump(body)));
}

void send_job_zip(api_context& api, const route_call& call, std::int64_t id,
                  const std::string& folder, const std::string& name) {
  auto dir = api.layout.job_dir(id);
  if (!std::filesystem::is_directory(dir))
    return call.respond(error_response(404, "no job " + std::to_string(id)));
  if (patient_masked(api, call))
    return call.respond(error_response(
        403, "viewers see patients masked here (web.mask_patient_for_viewers), so they cannot "
             "download a job's instances; ask an admin"));
  http_response response;
  response.content_type = "application/zip";
  response.headers.push_back({"Content-Disposition", "attachment; filename=\"" + name + ".zip\""});
  response.stream = std::make_shared<zip_stream>(dir / folder, name, api.file_pool);
  call.respond(std::move(response));
}

void get_job_output_zip(api_context& api, const route_call& call) {
  auto id = call.id("job");
  send_job_zip(api, call, id, "OUTPUT", "job-" + std::to_string(id) + "-OUTPUT");
}

void get_job_input_zip(api_context& api, const route_call& call) {
  auto id = call.id("job");
  send_job_zip(api, call, id, "INPUT", "job-" + std::to_string(id) + "-INPUT");
}

void retry_job(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("job"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_manager, actor_timeout, retry_atom::value, id)
        .then([respond](job_record& job) { respond(json_response(json::dump(job_view(job)))); },
              answer_error(respond));
  });
}

void cancel_job(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("job"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_manager, actor_timeout, cancel_atom::value, id)
        .then(
            [respond, id](bool found) {
              if (!found)
                return respond(error_response(409, "job " + std::to_string(id) +
                                                       " is neither queued nor running"));
              respond(json_response(json::dump({{"cancelled", id}})));
            },
            answer_error(respond));
  });
}

void preview_job_routing(api_context& api, const route_call& call) {
  api.ask([&api, id = call.id("job"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, job_atom::value, id)
        .then(
            [&api, self, respond](job_record& job) {
              self->request(api.backend.router, actor_timeout, get_atom::value, route_atom::value,
                            job)
                  .then(
                      [respond, job](std::vector<send_task>& sends) {
                        auto list = json::value::array();
                        for (auto& s : sends)
                          list.push_back(send_view(s));
                        json::value body = {{"job", job.id},
                                            {"state", to_string(job.state)},
                                            {"sends", std::move(list)}};
                        respond(json_response(json::dump(body)));
                      },
                      answer_error(respond));
            },
            answer_error(respond));
  });
}

void send_job_to(api_context& api, const route_call& call) {
  auto body = json::parse(call.request.body, "the request body");
  if (!body || !body->is_object())
    return call.respond(error_response(
        400, "send a JSON object: {\"destination\": \"NAME\", \"directory\": \"OUTPUT\"}"));
  json::problems problems{"the request body", {}};
  json::object_reader reader{*body, "", problems};
  reader.reject_unknown_keys({"destination", "directory"});
  auto destination = reader.get_string("destination");
  auto directory = reader.get_string("directory").value_or("OUTPUT");
  if (!destination)
    problems.add("destination", "is required: the name of one of the node's destinations");
  if (!problems.empty())
    return call.respond(error_response(400, problems.report()));
  api.ask([&api, id = call.id("job"), destination = *destination, directory,
           respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, job_atom::value, id)
        .then(
            [&api, self, destination, directory, respond](job_record& job) {
              self->request(api.backend.router, actor_timeout, send_atom::value, job, destination,
                            directory)
                  .then(
                      [respond](send_task& task) {
                        respond(json_response(json::dump(send_view(task)), 202));
                      },
                      answer_error(respond));
            },
            answer_error(respond));
  });
}

} // namespace dcmstreams::web
