// The old appliance's endpoints, kept so that its clients (the `mb` tool, the
// PHP pages' scripts) work unchanged; docs/http.md maps each field.

#include "pipeline/jobs/views.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/upload.hpp"

#include <algorithm>
#include <fstream>

namespace dcmstreams::web {

void get_installed_buckets(api_context& api, const route_call& call) {
  auto snapshot = api.backend.registry->get();
  auto list = json::value::array();
  for (auto& s : snapshot->streams)
    list.push_back({{"AETitle", s.ae_title},
                    {"Description", s.description},
                    {"License", s.license},
                    {"Name", s.name},
                    {"Version", s.version}});
  call.respond(json_response(json::dump(list)));
}

void get_legacy_status(api_context& api, const route_call& call) {
  api.ask([&api, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
        .then(
            [&api, respond](std::vector<stream_stats>& stats) {
              auto snapshot = api.backend.registry->get();
              // [AE title, running, queued, concurrency], all strings as the old client reads them.
              auto list = json::value::array();
              for (auto& s : snapshot->streams) {
                auto it = std::find_if(stats.begin(), stats.end(), [&](const stream_stats& x) {
                  return x.stream == s.folder_name;
                });
                list.push_back({s.ae_title, std::to_string(it == stats.end() ? 0 : it->running),
                                std::to_string(it == stats.end() ? 0 : it->queued),
                                std::to_string(s.concurrency)});
              }
              respond(json_response(json::dump(list)));
            },
            answer_error(respond));
  });
}

void get_scratch(api_context& api, const route_call& call) {
  job_filter filter;
  filter.limit = 1000;
  api.ask([&api, filter, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, jobs_atom::value, filter)
        .then(
            [respond](job_page& page) {
              // Every value a string, as the old client searches strings only.
              auto list = json::value::array();
              for (auto& job : page.jobs)
                list.push_back({{"scratchdir", std::to_string(job.id)},
                                {"pid", std::to_string(job.id)},
                                {"AETitleCalled", job.called_ae},
                                {"AETitleCaller", job.calling_ae},
                                {"CallerIP", job.peer},
                                {"StudyInstanceUID", job.study_uid},
                                {"received", iso8601(job.received)},
                                {"stream", job.stream},
                                {"state", to_string(job.state)},
                                {"instances", std::to_string(job.instances)}});
              respond(json_response(json::dump(list)));
            },
            answer_error(respond));
  });
}

void get_output_zip_legacy(api_context& api, const route_call& call) {
  auto folder = query_value(call.request, "folder");
  auto id = parse_id(folder);
  if (!id)
    return call.respond(error_response(400, "folder=" + folder + " is not a job (scratchdir)"));
  send_job_zip(api, call, *id, "OUTPUT", folder);
}

void delete_study_legacy(api_context& api, const route_call& call) {
  auto folder = query_value(call.request, "scratchdir");
  auto id = parse_id(folder);
  if (!id)
    return call.respond(error_response(400, "scratchdir=" + folder + " is not a job"));
  api.ask([&api, id = *id, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, delete_atom::value, id)
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

void process_zip_legacy(api_context& api, const route_call& call) {
  auto& request = call.request;
  if (request.body_file.empty())
    return call.respond(error_response(400, "processZip.php needs a multipart/form-data body"));
  auto body = take_upload_body(request.body_file);
  if (!body)
    return call.respond(failure_response(body.error()));
  auto mapped = *body;
  auto type = header_value(request, "content-type");
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
    return call.respond(
        error_response(400, "processZip.php needs the form fields aetitle and theFile (the ZIP)"));
  // The old client's sender is free text ("hauke:project"); an AE title
  // holds at most 16 characters without backslashes.
  std::string calling;
  for (char c : sender)
    if (calling.size() < 16 && c != '\\' && c >= 32 && c < 127)
      calling += c;
  accept_upload(api, call, ae, calling.empty() ? "WEBUPLOAD" : calling, file->offset, file->length,
                mapped);
}

void get_scratch_log(api_context& api, const route_call& call) {
  auto folder = call.param("folder");
  auto file = api.layout.job_dir(call.id("folder")) / "processing.log";
  if (!std::filesystem::exists(file))
    return call.respond(error_response(404, "job " + folder + " has no processing.log"));
  std::ifstream in{file, std::ios::binary};
  http_response response;
  response.content_type = "text/plain; charset=utf-8";
  response.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  call.respond(std::move(response));
}

} // namespace dcmstreams::web
