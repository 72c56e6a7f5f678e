// What a pseudonym stands for, for an admin (deidentify.keep_mapping,
// docs/streams.md).

#include "web/api_context.hpp"
#include "web/handlers.hpp"

namespace dcmstreams::web {

void get_pseudonym(api_context& api, const route_call& call) {
  auto value = query_value(call.request, "value");
  if (value.empty())
    return call.respond(error_response(
        400, "give the pseudonym to look up as ?value= (a UID or an ANON-... patient)"));
  api.ask([&api, value, respond = call.respond](caf::event_based_actor* self) {
    self->request(api.backend.job_store, actor_timeout, get_atom::value, pseudonym_atom::value,
                  value)
        .then(
            [respond, value](std::vector<database::kept_pseudonym>& kept) {
              auto list = json::value::array();
              for (auto& k : kept)
                list.push_back({{"kind", k.record.kind},
                                {"original", k.record.original},
                                {"job_id", k.job_id},
                                {"created", iso8601(k.created)}});
              respond(json_response(
                  json::dump({{"pseudonym", value}, {"stands_for", std::move(list)}})));
            },
            answer_error(respond));
  });
}

} // namespace dcmstreams::web
