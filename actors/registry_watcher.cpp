#include "actors/registry_watcher.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

namespace {

constexpr const char* component = "streams";

std::string summary(const streams::stream_definition& s) {
  std::string how = s.command.empty()
                        ? "pipeline of " + std::to_string(s.pipeline.size()) + " kernel steps"
                        : "command " + s.command.front();
  return "stream " + s.folder_name + ": AE title " + s.ae_title + ", " + how +
         (s.enabled ? "" : ", disabled");
}

} // namespace

void load_and_publish(const std::filesystem::path& streams_dir, streams::shared_registry& shared,
                      node_metrics* metrics, readiness_board* readiness) {
  auto previous = shared.get();
  auto next = std::make_shared<streams::registry_snapshot>(streams::load_registry(streams_dir));
  if (next->listing_failed)
    next->streams = previous->streams;
  // A broken edit must not take a working stream off the air: its AE title
  // would be refused until someone notices.
  for (auto& name : next->unusable) {
    auto* before = previous->find_by_name(name);
    if (!before || next->find_by_ae(before->ae_title))
      continue;
    next->streams.push_back(*before);
    next->problems.push_back("stream " + name + " keeps its last good definition (AE title " +
                             before->ae_title + ") until its info.json is fixed");
  }
  if (next->streams.empty())
    next->problems.push_back("no stream is loaded from " + streams_dir.string() +
                             ", so every association is refused; add stream folders there or "
                             "pass --streams DIR");
  for (auto& stream : next->streams) {
    auto* before = previous->find_by_name(stream.folder_name);
    if (!before)
      log::info(component, "loaded " + summary(stream));
    else if (summary(*before) != summary(stream))
      log::info(component, "reloaded " + summary(stream));
    for (auto& note : stream.notes)
      log::warning(component, note);
  }
  for (auto& stream : previous->streams)
    if (!next->find_by_name(stream.folder_name))
      log::info(component, "stream " + stream.folder_name + " is gone; AE title " +
                               stream.ae_title + " is no longer accepted");
  for (auto& problem : next->problems)
    log::error(component, problem);
  if (readiness)
    readiness->set("streams", next->problems);
  if (metrics) {
    metrics->streams_loaded.with({}).set(static_cast<double>(next->streams.size()));
    metrics->stream_reloads.with({next->problems.empty() ? "ok" : "with_problems"}).increment();
  }
  shared.set(std::move(next));
}

registry_actor::behavior_type
registry_watcher(registry_actor::stateful_pointer<registry_watcher_state> self,
                 registry_watcher_settings settings) {
  self->state.settings = std::move(settings);
  self->state.fingerprint =
      streams::registry_fingerprint(self->state.settings.streams_dir).value_or("");
  self->delayed_send(self, self->state.settings.interval, tick_atom::value);
  return {
      [self](tick_atom) {
        // A folder that cannot be listed now (no descriptor left) has not changed.
        auto now = streams::registry_fingerprint(self->state.settings.streams_dir);
        if (now && *now != self->state.fingerprint) {
          self->state.fingerprint = *now;
          log::info(component, "the streams folder changed; reloading");
          load_and_publish(self->state.settings.streams_dir, *self->state.settings.shared,
                           self->state.settings.metrics, self->state.settings.readiness);
        }
        self->delayed_send(self, self->state.settings.interval, tick_atom::value);
      },
      [self](reload_atom) -> std::uint64_t {
        self->state.fingerprint =
            streams::registry_fingerprint(self->state.settings.streams_dir).value_or("");
        load_and_publish(self->state.settings.streams_dir, *self->state.settings.shared,
                         self->state.settings.metrics, self->state.settings.readiness);
        return self->state.settings.shared->get()->streams.size();
      },
  };
}

} // namespace dcmstreams
