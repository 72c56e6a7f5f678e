#include "actors/job_store.hpp"

namespace dcmstreams {

job_store_actor::behavior_type job_store(job_store_actor::stateful_pointer<job_store_state> self,
                                         std::shared_ptr<database> db, store_layout layout,
                                         bool durable) {
  self->state.db = std::move(db);
  self->state.jobs = std::make_unique<intake>(std::move(layout), *self->state.db, durable);
  return {
      [self](create_atom, const completed_study& study) -> caf::result<job_record> {
        auto job = self->state.jobs->create_job(study);
        if (!job)
          return make_error(job.error());
        return *job;
      },
      [self](recover_atom) -> recovery_report { return self->state.jobs->recover(); },
  };
}

} // namespace dcmstreams
