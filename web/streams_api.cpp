// The streams: what each one is, its queue and run times, and how to send to it.

#include "web/api_context.hpp"
#include "web/handlers.hpp"

#include <algorithm>

namespace dcmstreams::web {

namespace {

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

json::value stream_view(const streams::stream_definition& s, const stream_stats* stats,
                        const std::string& dicom_host, std::uint16_t dicom_port) {
  std::uint64_t queued = stats ? stats->queued : 0;
  std::uint64_t running = stats ? stats->running : 0;
  // Until the stream has run once, nobody knows how long its queue takes.
  json::value eta = nullptr;
  if (stats && stats->runs > 0)
    eta = static_cast<double>(queued + running) * stats->mean_s / std::max(1, s.concurrency);
  return {
      {"name", s.folder_name},
      {"title", s.name},
      {"description", s.description},
      {"version", s.version},
      {"ae_title", s.ae_title},
      {"license", s.license},
      {"enabled", s.enabled},
      {"kind", s.pipeline.empty() ? "command" : "pipeline"},
      {"concurrency", s.concurrency},
      {"group_by", s.group_by == streams::grouping::series ? "series" : "study"},
      {"timeout_s", s.timeout_s},
      {"queued", queued},
      {"running", running},
      {"running_jobs", stats ? stats->running_jobs : std::vector<std::int64_t>{}},
      {"runs", stats ? stats->runs : std::uint64_t{0}},
      {"mean_s", stats ? stats->mean_s : 0.0},
      {"std_s", stats ? stats->std_s : 0.0},
      {"eta_s", eta},
      {"storescu", "TCP_NODELAY=1 storescu -aet MYSCU -aec " + s.ae_title + " +sd +r " +
                       dicom_host + " " + std::to_string(dicom_port) + " /path/to/study"},
      {"notes", s.notes},
  };
}

} // namespace

void get_streams(api_context& api, const route_call& call) {
  auto host = host_of_header(call.request);
  api.ask([&api, host, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_manager, actor_timeout, get_atom::value, stats_atom::value)
        .then(
            [&api, host, respond](std::vector<stream_stats>& stats) {
              auto snapshot = api.backend.registry->get();
              auto list = json::value::array();
              for (auto& s : snapshot->streams) {
                auto it = std::find_if(stats.begin(), stats.end(), [&](const stream_stats& x) {
                  return x.stream == s.folder_name;
                });
                list.push_back(stream_view(s, it == stats.end() ? nullptr : &*it, host,
                                           api.settings.config.dicom.port));
              }
              json::value body = {{"streams", std::move(list)}, {"problems", snapshot->problems}};
              respond(json_response(json::dump(body)));
            },
            answer_error(respond));
  });
}

} // namespace dcmstreams::web
