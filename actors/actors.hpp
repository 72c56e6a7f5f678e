#pragma once
// Every atom, message type and typed actor interface of dcmstreams, in one
// place. One line of doc per handler says what it does.

#include "pipeline/error.hpp"
#include "pipeline/intake.hpp"
#include "pipeline/job.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dcmstreams {

// -- errors ----------------------------------------------------------------------

/// Our error category inside caf::error; the context holds the sentence.
constexpr caf::atom_value error_category = caf::atom("dcmstreams");

caf::error make_error(ec code);
caf::error make_error(ec code, std::string message);
caf::error make_error(const failure& problem);
/// The sentence of an error from make_error, or CAF's rendering of others.
std::string describe(const caf::error& error);
/// Our code inside a caf::error, or ec::unspecified.
ec code_of(const caf::error& error);

// -- atoms (at most 10 characters) -----------------------------------------------

using arrived_atom = caf::atom_constant<caf::atom("arrived")>;
using complete_atom = caf::atom_constant<caf::atom("complete")>;
using create_atom = caf::atom_constant<caf::atom("create")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

// -- message types -----------------------------------------------------------------

/// A pending study as the assembler sees it, for listings.
struct pending_study {
  study_key key;
  std::string stream;
  std::uint64_t instances = 0;
  std::uint64_t bytes = 0;
  epoch_ms first_arrival = 0;
  epoch_ms last_arrival = 0;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, study_key& x) {
  return f(caf::meta::type_name("study_key"), x.called_ae, x.calling_ae, x.peer, x.study_uid);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, arrived_instance& x) {
  return f(caf::meta::type_name("arrived_instance"), x.sop_uid, x.path, x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, completed_study& x) {
  return f(caf::meta::type_name("completed_study"), x.key, x.stream, x.instances, x.first_arrival);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, job_record& x) {
  return f(caf::meta::type_name("job_record"), x.id, x.stream, x.state, x.called_ae, x.calling_ae,
           x.peer, x.study_uid, x.series_uid, x.instances, x.bytes, x.received, x.completed,
           x.started, x.finished, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recovered_instance& x) {
  return f(caf::meta::type_name("recovered_instance"), x.key, x.instance);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recovery_report& x) {
  return f(caf::meta::type_name("recovery_report"), x.resumed_jobs, x.undone_jobs, x.pending,
           x.removed_partial_files, x.problems);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, pending_study& x) {
  return f(caf::meta::type_name("pending_study"), x.key, x.stream, x.instances, x.bytes,
           x.first_arrival, x.last_arrival);
}

// -- typed actor interfaces ----------------------------------------------------------

/// Creates job folders and records jobs: blocking file I/O and SQLite, so it
/// runs detached from the scheduler.
using job_store_actor = caf::typed_actor<
    /// Turns a completed study into a queued job (pipeline/intake.hpp).
    caf::replies_to<create_atom, completed_study>::with<job_record>,
    /// Finishes or undoes interrupted job creations; lists pending instances.
    caf::replies_to<recover_atom>::with<recovery_report>>;

/// Groups arriving instances by (calling AE, called AE, peer, study) and turns
/// each group into a job after its quiet period or maximum wait.
using assembler_actor = caf::typed_actor<
    /// An instance is durable in incoming/ (from the listener or from recovery).
    caf::reacts_to<arrived_atom, study_key, arrived_instance>,
    /// Completes every pending group of the study now; replies how many.
    caf::replies_to<complete_atom, std::string>::with<std::uint64_t>,
    /// Lists the pending studies.
    caf::replies_to<get_atom, pending_atom>::with<std::vector<pending_study>>,
    /// Timer: checks whether a group's quiet period has passed.
    caf::reacts_to<tick_atom, study_key>>;

/// Watches the streams folder and publishes a new registry when it changes.
using registry_actor = caf::typed_actor<
    /// Timer: compares the folder's fingerprint and reloads on change.
    caf::reacts_to<tick_atom>,
    /// Reloads now; replies with the number of streams loaded.
    caf::replies_to<reload_atom>::with<std::uint64_t>>;

} // namespace dcmstreams
