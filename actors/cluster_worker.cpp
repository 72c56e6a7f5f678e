#include "actors/cluster_worker.hpp"

namespace dcmstreams {

worker_actor::behavior_type
cluster_worker(worker_actor::stateful_pointer<cluster_worker_state> self,
               cluster_worker_settings settings) {
  self->state.settings = std::move(settings);
  return {
      [self](ping_atom) { return self->state.running; },
  };
}

} // namespace dcmstreams
