#include "actors/cluster_worker.hpp"

#include "actors/worker_run.hpp"

namespace dcmstreams {

worker_actor::behavior_type
cluster_worker(worker_actor::stateful_pointer<cluster_worker_state> self,
               cluster_worker_settings settings) {
  self->state.settings = std::move(settings);
  // Each run is monitored: its end frees its slot.
  self->set_down_handler([self](caf::down_msg&) {
    if (self->state.running > 0)
      --self->state.running;
  });
  return {
      [self](ping_atom) { return self->state.running; },
      [self](run_atom, remote_job& handed, caf::actor& runner) {
        ++self->state.running;
        auto run = self->spawn<caf::detached + caf::monitored>(
            worker_run, worker_run_settings{self->state.settings.work_dir, ++self->state.runs,
                                            std::move(handed), std::move(runner)});
        return caf::actor_cast<caf::actor>(run);
      },
  };
}

} // namespace dcmstreams
