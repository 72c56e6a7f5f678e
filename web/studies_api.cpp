// Studies still arriving, completing one by hand, and uploads of ZIPs of
// DICOM files (which become studies as a C-STORE would).

#include "actors/listener_bridge.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/upload.hpp"

namespace dcmstreams::web {

namespace {

constexpr const char* component = "web";

json::value pending_study_view(const pending_study& p) {
  return {
      {"study_uid", p.key.study_uid},
      {"called_ae", p.key.called_ae},
      {"calling_ae", p.key.calling_ae},
      {"peer", p.key.peer},
      {"stream", p.stream},
      {"instances", p.instances},
      {"bytes", p.bytes},
      {"first_arrival", iso8601(p.first_arrival)},
      {"last_arrival", iso8601(p.last_arrival)},
      {"completes_by", iso8601(p.completes_by)},
  };
}

} // namespace

void list_studies(api_context& api, const route_call& call) {
  api.ask([&api, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.assembler, actor_timeout, get_atom::value, pending_atom::value)
        .then(
            [respond](std::vector<pending_study>& pending) {
              auto studies = json::value::array();
              for (auto& p : pending)
                studies.push_back(pending_study_view(p));
              respond(json_response(json::dump({{"studies", std::move(studies)}})));
            },
            answer_error(respond));
  });
}

void complete_study(api_context& api, const route_call& call) {
  api.ask([&api, uid = call.param("study"), respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.assembler, actor_timeout, complete_atom::value, uid)
        .then(
            [respond, uid](std::uint64_t groups) {
              if (groups == 0)
                return respond(error_response(404, "no study " + uid + " is pending"));
              respond(
                  json_response(json::dump({{"study_uid", uid}, {"completed_groups", groups}})));
            },
            answer_error(respond));
  });
}

void upload_zip(api_context& api, const route_call& call) {
  auto& request = call.request;
  auto ae = query_value(request, "ae");
  if (ae.empty())
    return call.respond(error_response(400, "say which stream: POST /api/v1/upload?ae=<AE title>"));
  if (request.body_file.empty())
    return call.respond(error_response(400, "the upload has no body; send the ZIP as the body"));
  auto body = take_upload_body(request.body_file);
  if (!body)
    return call.respond(failure_response(body.error()));
  auto mapped = *body;
  auto calling = query_value(request, "sender");
  accept_upload(api, call, ae, calling.empty() ? "WEBUPLOAD" : calling, 0, mapped->bytes().size(),
                mapped);
}

void accept_upload(api_context& api, const route_call& call, const std::string& called_ae,
                   const std::string& calling_ae, std::size_t offset, std::size_t length,
                   std::shared_ptr<mapped_file> body) {
  auto snapshot = api.backend.registry->get();
  auto* stream = snapshot->find_by_ae(called_ae);
  if (!stream || !stream->enabled)
    return call.respond(error_response(404, "no enabled stream has the AE title \"" + called_ae +
                                                "\"; GET /api/v1/streams lists them"));
  if (check_ae_title(calling_ae))
    return call.respond(
        error_response(400, "sender \"" + calling_ae + "\" is not a valid AE title"));
  auto& storage = api.settings.config.storage;
  auto reserve = storage.reserve_free_mb * 1024 * 1024;
  if (free_bytes(api.settings.config.data_dir).value_or(0) < reserve + length)
    return call.respond(error_response(507, "the data disk is too full for this upload"));
  upload_source source{called_ae, calling_ae, call.request.remote};
  bool durable = storage.sync != sync_mode::none;
  // Unpacking writes every file durably, on the bounded file pool; then the
  // assembler learns of the files and completes their studies at once.
  bool queued = api.file_pool.try_post([&api, source, offset, length, body, durable, reserve,
                                        respond = call.respond] {
    auto unpacked = unpack_upload(body->bytes().data() + offset, length,
                                  api.settings.config.data_dir, source, durable, reserve);
    if (!unpacked)
      return respond(failure_response(unpacked.error()));
    for (auto& [key, instance] : unpacked->instances)
      caf::anon_send(api.backend.assembler, arrived_atom::value, key, instance);
    wait_for_job_creation(api.backend.backlog, api.backend.counters);
    auto studies = unpacked->studies;
    auto count = unpacked->instances.size();
    auto skipped = unpacked->skipped;
    log::info(component, "upload from " + source.peer + " for " + source.called_ae + ": " +
                             std::to_string(count) + " instances in " +
                             std::to_string(studies.size()) + " studies, " +
                             std::to_string(skipped.size()) + " entries skipped");
    api.ask([&api, studies, count, skipped, respond](caf::event_based_actor*) {
      // Sent after the arrivals from the upload thread: the assembler's
      // mailbox is first in, first out, so it knows every file by now. The
      // answer (groups completed) is not needed: anonymous sends drop it.
      auto uids = json::value::array();
      for (auto& key : studies) {
        caf::anon_send(api.backend.assembler, complete_atom::value, key.study_uid);
        uids.push_back(key.study_uid);
      }
      json::value body = {{"instances", count}, {"studies", std::move(uids)}, {"skipped", skipped}};
      respond(json_response(json::dump(body), 202));
    });
  });
  if (!queued)
    call.respond(busy("unpacking uploads"));
}

} // namespace dcmstreams::web
