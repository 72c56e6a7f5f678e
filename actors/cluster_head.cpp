#include "actors/cluster_head.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

namespace {

constexpr const char* component = "cluster";

using self_pointer = cluster_head_actor::stateful_pointer<cluster_head_state>;

void show(self_pointer self, const joined_worker& w) {
  auto* m = self->state.settings.metrics;
  if (!m)
    return;
  auto& name = w.status.info.name;
  m->worker_up.with({name}).set(w.status.state == "joined" ? 1 : 0);
  m->worker_slots.with({name}).set(w.status.info.slots);
  m->worker_running.with({name}).set(w.status.running);
}

void lose(self_pointer self, joined_worker& w, const char* reason, const std::string& why) {
  if (w.status.state == "lost")
    return;
  w.status.state = "lost";
  if (auto& slots = self->state.settings.slots)
    slots->lost(w.status.info.name);
  log::warning(component, "worker " + w.status.info.name + " (pid " +
                              std::to_string(w.status.info.pid) + " on " + w.status.info.host +
                              ") is lost: " + why);
  if (auto* m = self->state.settings.metrics)
    m->worker_losses.with({w.status.info.name, reason}).increment();
  show(self, w);
}

joined_worker* find(self_pointer self, const std::string& name, const worker_actor& handle) {
  auto it = self->state.workers.find(name);
  // A worker that joined again since has a new handle: answers to the old one are stale.
  return it != self->state.workers.end() && it->second.handle == handle ? &it->second : nullptr;
}

void heartbeat(self_pointer self) {
  auto& cluster = self->state.settings.cluster;
  auto now = now_ms();
  for (auto& [name, w] : self->state.workers) {
    if (!w.handle)
      continue; // disconnected: it joins again with a new connection
    if (w.asked) {
      // One heartbeat at a time: a hung worker gets no pile of them.
      auto silent_s = static_cast<double>(now - w.asked_at) / 1000.0;
      if (silent_s > cluster.lost_after_s)
        lose(self, w, "silent",
             "no answer to a heartbeat for " + log::seconds_text(silent_s) +
                 " (cluster.lost_after_s: " + log::seconds_text(cluster.lost_after_s) +
                 "); it hangs, or the network between is cut");
      continue;
    }
    w.asked = true;
    w.asked_at = now;
    auto handle = w.handle;
    self->request(handle, caf::infinite, ping_atom::value)
        .then(
            [self, name = name, handle](std::uint32_t running) {
              auto* w = find(self, name, handle);
              if (!w)
                return;
              w->asked = false;
              w->status.answered = now_ms();
              w->status.running = running;
              if (w->status.state == "lost") {
                w->status.state = "joined";
                if (auto& slots = self->state.settings.slots)
                  slots->back(name);
                ++w->status.joins;
                if (auto* m = self->state.settings.metrics)
                  m->worker_joins.with({name}).increment();
                log::info(component, "worker " + name + " answers again; it is back");
              }
              show(self, *w);
            },
            [self, name = name, handle](caf::error&) {
              // The connection went: the down handler says so.
              if (auto* w = find(self, name, handle))
                w->asked = false;
            });
  }
}

} // namespace

cluster_head_actor::behavior_type cluster_head(self_pointer self, cluster_head_settings settings) {
  self->state.settings = std::move(settings);
  self->set_down_handler([self](caf::down_msg& msg) {
    for (auto& [name, w] : self->state.workers)
      if (w.handle && caf::actor_cast<caf::actor_addr>(w.handle) == msg.source) {
        w.handle = worker_actor{};
        w.asked = false;
        lose(self, w, "disconnected",
             "its connection closed (" + describe(msg.reason) +
                 "); it was stopped or killed, or its machine went away");
        return;
      }
  });
  self->send(self, tick_atom::value);
  return {
      [self](enlist_atom, worker_info& info, caf::actor& handle) -> caf::result<double> {
        if (info.name.empty() || info.slots == 0 || !handle)
          return make_error(ec::invalid_argument,
                            "a worker must have a name, at least one slot and an actor");
        auto& workers = self->state.workers;
        auto it = workers.find(info.name);
        if (it != workers.end() && it->second.handle && it->second.status.state == "joined")
          return make_error(ec::invalid_argument,
                            "a worker named " + info.name + " has joined already (pid " +
                                std::to_string(it->second.status.info.pid) + " on " +
                                it->second.status.info.host +
                                "); give each worker a name of its own (--name)");
        auto& w = workers[info.name];
        if (w.handle)
          self->demonitor(caf::actor_cast<caf::actor_addr>(w.handle)); // a lost one, replaced
        w.handle = caf::actor_cast<worker_actor>(handle);
        self->monitor(w.handle);
        w.asked = false;
        auto joins = w.status.joins + 1;
        w.status = worker_status{};
        w.status.info = info;
        w.status.state = "joined";
        w.status.joined = w.status.answered = now_ms();
        w.status.joins = joins;
        if (auto& slots = self->state.settings.slots)
          slots->joined(info.name, w.handle, info.slots);
        log::info(component, "worker " + info.name + " joined: " + std::to_string(info.slots) +
                                 " slots, pid " + std::to_string(info.pid) + " on " + info.host +
                                 ", dcmstreams " + info.version);
        if (auto* m = self->state.settings.metrics)
          m->worker_joins.with({info.name}).increment();
        show(self, w);
        return self->state.settings.cluster.heartbeat_s;
      },
      [self](tick_atom) {
        heartbeat(self);
        self->delayed_send(self, seconds(self->state.settings.cluster.heartbeat_s),
                           tick_atom::value);
      },
      [self](get_atom, workers_atom) {
        std::vector<worker_status> list;
        for (auto& [name, w] : self->state.workers)
          list.push_back(w.status);
        return list;
      },
  };
}

} // namespace dcmstreams
