// DICOMweb STOW-RS (PS3.18 10.5): POST /dicomweb/{AE}/studies with a
// multipart/related body of application/dicom parts stores each instance
// through the same path as C-STORE and uploads (durable in incoming/ before
// the answer, the reserve, a study per sender completed by the stream's
// rules), and answers PS3.18's Store Instances response in DICOM JSON.

#include "actors/listener_bridge.hpp"
#include "pipeline/foundation/log.hpp"
#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/upload.hpp"

#include <cstring>

namespace dcmstreams::web {

namespace {

constexpr const char* component = "dicomweb";

// The calling AE title STOW-RS arrivals are grouped under, with the client's
// address as the peer: one sender per client, as for C-STORE.
constexpr const char* stow_sender = "DICOMWEB";

// PS3.18 Table 10.5.3-1 failure reasons, as PS3.4 statuses.
constexpr int processing_failure = 0x0110;
constexpr int out_of_resources = 0xA700;
constexpr int cannot_understand = 0xC000;
constexpr int sop_class_not_supported = 0x0122;

json::value element(const char* vr, json::value value) {
  return {{"vr", vr}, {"Value", json::value::array({std::move(value)})}};
}

json::value referenced(const upload_store::outcome& o) {
  return {{"00081150", element("UI", o.sop_class_uid)},
          {"00081155", element("UI", o.sop_instance_uid)}};
}

json::value failed(const std::string& sop_class, const std::string& sop_instance, int reason) {
  json::value item = json::value::object();
  if (!sop_class.empty())
    item["00081150"] = element("UI", sop_class);
  if (!sop_instance.empty())
    item["00081155"] = element("UI", sop_instance);
  item["00081197"] = element("US", reason);
  return item;
}

http_response stow_answer(unsigned status, json::value stored, json::value refused) {
  json::value body = json::value::object();
  if (!stored.empty())
    body["00081199"] = {{"vr", "SQ"}, {"Value", std::move(stored)}};
  if (!refused.empty())
    body["00081198"] = {{"vr", "SQ"}, {"Value", std::move(refused)}};
  auto response = json_response(json::dump(body), status);
  response.content_type = "application/dicom+json";
  return response;
}

} // namespace

void store_instances(api_context& api, const route_call& call) {
  auto& request = call.request;
  // Every answer is counted by its status (dcmstreams_stow_requests_total).
  responder respond = [&api, respond = call.respond](http_response response) {
    if (auto* counters = api.backend.counters)
      counters->stow_requests.with({std::to_string(response.status)}).increment();
    respond(std::move(response));
  };
  auto called_ae = call.param("ae");
  auto snapshot = api.backend.registry->get();
  auto* stream = snapshot->find_by_ae(called_ae);
  if (!stream || !stream->enabled)
    return respond(error_response(404, "no enabled stream has the AE title \"" + called_ae +
                                           "\"; GET /api/v1/streams lists them"));
  auto type_header = header_value(request, "content-type");
  auto type = lower_case(type_header);
  if (type.rfind("multipart/related", 0) != 0 || type.find("boundary=") == std::string::npos)
    return respond(error_response(
        415, "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary, not \"" +
                 type_header + "\""));
  if (type.find("type=") != std::string::npos &&
      type.find("application/dicom") == std::string::npos)
    return respond(error_response(
        415, "this node stores DICOM Part 10 instances (type=\"application/dicom\"); metadata "
             "with bulk data (application/dicom+json or +xml) is not taken"));
  if (request.body_file.empty())
    return respond(error_response(400, "the request has no body"));
  auto body = take_upload_body(request.body_file);
  if (!body)
    return respond(failure_response(body.error()));
  auto mapped = *body;
  auto& storage = api.settings.config.storage;
  auto reserve = storage.reserve_free_mb * 1024 * 1024;
  upload_source source{called_ae, stow_sender, request.remote};
  bool durable = storage.sync != sync_mode::none;
  bool queued =
      api.file_pool.try_post([&api, source, mapped, type_header, durable, reserve, respond] {
        auto parts = parse_multipart(mapped->bytes(), type_header);
        if (parts.empty())
          return respond(error_response(
              400, "the body holds no part: each instance goes between --boundary lines"));
        upload_store store{api.settings.config.data_dir, source, durable, reserve,
                           api.backend.ingest_journal};
        // Nothing of this request is kept: every instance is refused alike.
        auto refuse_all = [&](const failure& problem) {
          int reason = problem.code == ec::out_of_resources ? out_of_resources : processing_failure;
          log::warning(component, "STOW-RS from " + source.peer + " for " + source.called_ae +
                                      " refused: " + problem.message);
          auto all = json::value::array();
          for (std::size_t k = 0; k < parts.size(); ++k)
            all.push_back(failed("", "", reason));
          respond(stow_answer(reason == out_of_resources ? 507 : 409, json::value::array(),
                              std::move(all)));
        };
        auto stored = json::value::array(), refused = json::value::array();
        for (std::size_t i = 0; i < parts.size(); ++i) {
          auto& part = parts[i];
          auto name = "part " + std::to_string(i + 1);
          if (!part.content_type.empty() && part.content_type != "application/dicom") {
            refused.push_back(failed("", "", sop_class_not_supported));
            continue;
          }
          auto outcome = store.add_bytes(name, mapped->bytes().substr(part.offset, part.length));
          if (!outcome)
            return refuse_all(outcome.error());
          if (outcome->stored)
            stored.push_back(referenced(*outcome));
          else
            refused.push_back(
                failed(outcome->sop_class_uid, outcome->sop_instance_uid, cannot_understand));
        }
        auto kept = store.finish();
        if (!kept)
          return refuse_all(kept.error());
        for (auto& [key, instance] : kept->instances) {
          if (auto* counters = api.backend.counters) {
            counters->instances_received.with({key.called_ae}).increment();
            counters->bytes_received.with({key.called_ae})
                .increment(static_cast<double>(instance.bytes));
          }
          caf::anon_send(api.backend.assembler, arrived_atom::value, key, instance);
        }
        wait_for_job_creation(api.backend.backlog, api.backend.counters);
        log::info(component, "STOW-RS from " + source.peer + " for " + source.called_ae + ": " +
                                 std::to_string(stored.size()) + " instances stored, " +
                                 std::to_string(refused.size()) + " refused");
        // PS3.18 10.5.3: 200 all stored, 202 some, 409 none.
        unsigned status = refused.empty() ? 200 : stored.empty() ? 409 : 202;
        respond(stow_answer(status, std::move(stored), std::move(refused)));
      });
  if (!queued)
    respond(busy("storing STOW-RS instances"));
}

} // namespace dcmstreams::web
