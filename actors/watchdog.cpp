#include "actors/watchdog.hpp"

#include "pipeline/foundation/log.hpp"

namespace dcmstreams {

namespace {
constexpr const char* component = "watchdog";
}

watchdog_actor::behavior_type watchdog(watchdog_actor::stateful_pointer<watchdog_state> self,
                                       watchdog_settings settings) {
  self->state.settings = std::move(settings);
  self->delayed_send(self, seconds(self->state.settings.interval_s), tick_atom::value);
  return {
      [self](tick_atom) {
        auto& st = self->state;
        auto problem = st.settings.probe();
        if (problem.empty()) {
          if (st.misses > 0)
            log::info(component, "the DICOM listener answers C-ECHO again");
          st.misses = 0;
        } else if (++st.misses < st.settings.misses_before_restart) {
          log::warning(component, "the DICOM listener did not answer C-ECHO: " + problem);
        } else {
          log::error(component, "the DICOM listener did not answer C-ECHO " +
                                    std::to_string(st.misses) + " times in a row (" + problem +
                                    "); restarting it");
          st.misses = 0;
          if (st.settings.metrics)
            st.settings.metrics->watchdog_restarts.with({}).increment();
          if (auto failed = st.settings.restart())
            log::error(component, "the DICOM listener could not be restarted: " + failed->message +
                                      "; trying again at the next probe");
          else
            log::info(component, "the DICOM listener was restarted");
        }
        self->delayed_send(self, seconds(st.settings.interval_s), tick_atom::value);
      },
  };
}

} // namespace dcmstreams
