#pragma once
// Every atom, message type and typed actor interface of dcmstreams, in one
// place. One line of doc per handler says what it does.

#include "pipeline/execution/file_transfer.hpp"
#include "pipeline/execution/job_runner.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/jobs/database.hpp"
#include "pipeline/jobs/intake.hpp"
#include "pipeline/jobs/job.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <optional>
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

/// Test hook: makes `actor` stop with an error as a crash would. The exit
/// comes from the actor itself: one from a linked actor would first undo the
/// link, and exit_reason::kill is fatal for linked actors too.
void crash_for_test(const caf::strong_actor_ptr& actor, const std::string& why);
/// Our code inside a caf::error, or ec::unspecified.
ec code_of(const caf::error& error);

// -- atoms (at most 10 characters) -----------------------------------------------

using arrived_atom = caf::atom_constant<caf::atom("arrived")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using chunk_atom = caf::atom_constant<caf::atom("chunk")>;
using complete_atom = caf::atom_constant<caf::atom("complete")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using create_atom = caf::atom_constant<caf::atom("create")>;
using delete_atom = caf::atom_constant<caf::atom("delete")>;
using discard_atom = caf::atom_constant<caf::atom("discard")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using enlist_atom = caf::atom_constant<caf::atom("enlist")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using job_atom = caf::atom_constant<caf::atom("job")>;
using jobs_atom = caf::atom_constant<caf::atom("jobs")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
using notify_atom = caf::atom_constant<caf::atom("notify")>;
using pause_atom = caf::atom_constant<caf::atom("pause")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;
using pseudonym_atom = caf::atom_constant<caf::atom("pseudonym")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using queued_atom = caf::atom_constant<caf::atom("queued")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using released_atom = caf::atom_constant<caf::atom("released")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using scrub_atom = caf::atom_constant<caf::atom("scrub")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using sends_atom = caf::atom_constant<caf::atom("sends")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using workers_atom = caf::atom_constant<caf::atom("workers")>;

// -- message types -----------------------------------------------------------------

/// A pending study as the assembler sees it, for listings.
struct pending_study {
  study_key key;
  std::string stream;
  std::uint64_t instances = 0;
  std::uint64_t bytes = 0;
  epoch_ms first_arrival = 0;
  epoch_ms last_arrival = 0;
  epoch_ms completes_by = 0; // its quiet period or maximum wait over, whichever is first
};

/// A worker as it introduces itself to the head (docs/cluster.md).
struct worker_info {
  std::string name;
  std::string host; // the worker machine's host name
  std::uint32_t slots = 1;
  std::uint32_t pid = 0;
  std::string version; // of dcmstreams
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, worker_info& x) {
  return f(caf::meta::type_name("worker_info"), x.name, x.host, x.slots, x.pid, x.version);
}

/// A worker as the head knows it.
struct worker_status {
  worker_info info;
  std::string state;     // "joined": answers; "lost": silent past cluster.lost_after_s
  epoch_ms joined = 0;   // when it last joined
  epoch_ms answered = 0; // its last answer to a heartbeat
  std::uint32_t running = 0;
  std::uint64_t joins = 0; // how often it joined since the head started
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, worker_status& x) {
  return f(caf::meta::type_name("worker_status"), x.info, x.state, x.joined, x.answered, x.running,
           x.joins);
}

/// A stream's queue and run times, for listings and ETAs.
struct stream_stats {
  std::string stream;
  std::uint64_t queued = 0;
  std::uint64_t running = 0;
  std::vector<std::int64_t> running_jobs;
  std::uint64_t runs = 0; // successful runs the times are from
  double mean_s = 0;
  double std_s = 0;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, stream_stats& x) {
  return f(caf::meta::type_name("stream_stats"), x.stream, x.queued, x.running, x.running_jobs,
           x.runs, x.mean_s, x.std_s);
}

/// A send task with the outcome of each of its files.
struct send_detail {
  send_task task;
  std::vector<send_file> files;
};

/// Converts seconds (fractions allowed, as the configuration has them) to
/// CAF's timespan, for timers.
inline caf::timespan seconds(double value) {
  return std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(value));
}

/// What one pass of the scrubber deleted (or, dry-run, would delete).
struct scrub_report {
  std::vector<std::int64_t> jobs;
  std::uint64_t freed_bytes = 0;
  double used_pct_before = 0;
  double used_pct_after = 0;
  bool dry_run = false;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, scrub_report& x) {
  return f(caf::meta::type_name("scrub_report"), x.jobs, x.freed_bytes, x.used_pct_before,
           x.used_pct_after, x.dry_run);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, send_file& x) {
  return f(caf::meta::type_name("send_file"), x.path, x.state, x.status, x.message);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, send_detail& x) {
  return f(caf::meta::type_name("send_detail"), x.task, x.files);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, job_filter& x) {
  return f(caf::meta::type_name("job_filter"), x.stream, x.state, x.sender, x.text, x.from, x.to,
           x.limit, x.offset, x.search_patient);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, job_page& x) {
  return f(caf::meta::type_name("job_page"), x.jobs, x.total);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, send_task& x) {
  return f(caf::meta::type_name("send_task"), x.id, x.job_id, x.rule, x.destination, x.host, x.port,
           x.called_ae, x.calling_ae, x.associations, x.transfer_syntax, x.deidentify, x.state,
           x.attempts, x.created, x.next_attempt, x.finished, x.message, x.files_total,
           x.files_sent, x.files_failed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attribute_match& x) {
  return f(caf::meta::type_name("attribute_match"), x.attribute, x.pattern);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, kernel_timing& x) {
  return f(caf::meta::type_name("kernel_timing"), x.kernel, x.seconds);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, job_outcome& x) {
  return f(caf::meta::type_name("job_outcome"), x.state, x.verdict, x.message, x.seconds,
           x.stopped_by_node, x.kernels);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, study_key& x) {
  return f(caf::meta::type_name("study_key"), x.called_ae, x.calling_ae, x.peer, x.study_uid);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, journal_ref& x) {
  return f(caf::meta::type_name("journal_ref"), x.sequence, x.offset);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, arrived_instance& x) {
  return f(caf::meta::type_name("arrived_instance"), x.sop_uid, x.path, x.bytes, x.inode, x.record,
           x.series_uid, x.modality, x.series_description);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, completed_study& x) {
  return f(caf::meta::type_name("completed_study"), x.key, x.stream, x.instances, x.first_arrival,
           x.accept, x.by_series, x.late_of, x.late);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, job_record& x) {
  return f(caf::meta::type_name("job_record"), x.id, x.stream, x.state, x.called_ae, x.calling_ae,
           x.peer, x.study_uid, x.series_uid, x.instances, x.bytes, x.received, x.completed,
           x.started, x.finished, x.message, x.worker, x.lost_runs, x.patient_name, x.patient_id,
           x.accession_number, x.study_date, x.study_description, x.modalities, x.series, x.origin);
}

// -- what moves between head and worker (docs/cluster.md) ---------------------------

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, transfer_file& x) {
  return f(caf::meta::type_name("transfer_file"), x.path, x.size);
}

/// Carries a std::optional<double> (CAF 0.17 has no inspect for it).
struct optional_number {
  std::optional<double>& value;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, optional_number& x) {
  bool present = x.value.has_value();
  double number = x.value.value_or(0);
  if constexpr (Inspector::reads_state) {
    return f(present, number);
  } else {
    auto result = f(present, number);
    x.value = present ? std::optional<double>{number} : std::nullopt;
    return result;
  }
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, kernel_step& x) {
  optional_number lower{x.lower}, upper{x.upper}, background{x.background},
      spacing_mm{x.spacing_mm}, factor{x.factor};
  return f(caf::meta::type_name("kernel_step"), x.kernel, x.sigma_mm, lower, upper, x.mode,
           background, x.center, x.width, x.slab_mm, spacing_mm, factor, x.threshold, x.bins,
           x.shift_dates);
}

/// A job handed to a worker: what to run, and the files of its INPUT/,
/// which the worker asks the head's runner for in chunks.
struct remote_job {
  job_record job;
  job_plan plan;             // without pseudonyms: de-identifying jobs run on the head
  std::uint64_t attempt = 0; // the head's number of this run, for logs and folders
  std::vector<transfer_file> inputs;
  /// cluster.shared_data: the attempt's folder in the head's data folder and
  /// the token the head wrote there; a worker that reads the same token there
  /// sees the same folder, takes INPUT/ from it and leaves its results there.
  std::string shared_dir;
  std::string shared_token;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, remote_job& x) {
  return f(caf::meta::type_name("remote_job"), x.job, x.plan.stream, x.plan.title, x.plan.command,
           x.plan.steps, x.plan.timeout_s, x.plan.log_limit_bytes, x.attempt, x.inputs,
           x.shared_dir, x.shared_token);
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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pseudonym_record& x) {
  return f(caf::meta::type_name("pseudonym_record"), x.pseudonym, x.kind, x.original);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, database::kept_pseudonym& x) {
  return f(caf::meta::type_name("kept_pseudonym"), x.record, x.job_id, x.created);
}

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, pending_study& x) {
  return f(caf::meta::type_name("pending_study"), x.key, x.stream, x.instances, x.bytes,
           x.first_arrival, x.last_arrival, x.completes_by);
}

// -- typed actor interfaces ----------------------------------------------------------

/// Creates job folders and records jobs: blocking file I/O and SQLite, so it
/// runs detached from the scheduler.
using job_store_actor = caf::typed_actor<
    /// Turns a completed study into queued (or skipped) jobs (pipeline/jobs/intake.hpp).
    caf::replies_to<create_atom, completed_study>::with<std::vector<job_record>>,
    /// To itself: commits the studies taken since the last commit, together.
    caf::reacts_to<create_atom>,
    /// Test hook: stalls for that many seconds, as on a disk that stopped.
    caf::reacts_to<pause_atom, double>,
    /// Journal records of copies a later copy replaced (intake::discard_replaced).
    caf::reacts_to<discard_atom, std::vector<journal_ref>>,
    /// Finishes or undoes interrupted job creations; lists pending instances.
    caf::replies_to<recover_atom>::with<recovery_report>,
    /// The instances of studies still arriving, from incoming/ (for a
    /// restarted assembler); leaves the files being received alone.
    caf::replies_to<get_atom, pending_atom>::with<std::vector<recovered_instance>>,
    /// Records a job's new state and times (database row and info.json).
    caf::reacts_to<update_atom, job_record>,
    /// Jobs to run after a start: those that were running, then the queued, oldest first.
    caf::replies_to<get_atom, queued_atom>::with<std::vector<job_record>>,
    /// One job by id.
    caf::replies_to<get_atom, job_atom, std::int64_t>::with<job_record>,
    /// Run times of successful jobs per stream.
    caf::replies_to<get_atom, stats_atom>::with<std::vector<stream_stats>>,
    /// A page of jobs matching the filter, newest first.
    caf::replies_to<get_atom, jobs_atom, job_filter>::with<job_page>,
    /// Removes a finished job: its folder and its row; replies with the removed job.
    caf::replies_to<delete_atom, std::int64_t>::with<job_record>,
    /// The sends of one job, oldest first.
    caf::replies_to<get_atom, sends_atom, std::int64_t>::with<std::vector<send_task>>,
    /// One send with the outcome of each file.
    caf::replies_to<get_atom, send_atom, std::int64_t>::with<send_detail>,
    /// What a pseudonym stands for (deidentify.keep_mapping).
    caf::replies_to<get_atom, pseudonym_atom,
                    std::string>::with<std::vector<database::kept_pseudonym>>,
    /// Whether the database takes writes (readiness).
    caf::replies_to<ping_atom>::with<bool>>;

/// Sends the files of send tasks to one destination, N associations at a
/// time, retrying with back-off; runs detached (blocking network I/O).
using sender_actor = caf::typed_actor<
    /// Runs (or runs again) the send task with this id.
    caf::reacts_to<send_atom, std::int64_t>>;

/// Applies routing.json to finished jobs, records send tasks and hands them to
/// the senders; runs detached (it lists and reads result files).
using router_actor = caf::typed_actor<
    /// A job finished: route its results.
    caf::reacts_to<route_atom, job_record>,
    /// Timer: reloads routing.json when it changed.
    caf::reacts_to<tick_atom>,
    /// Timer after a sender died: a new sender takes the unfinished sends
    /// of that destination and way of sending (the key) from the database.
    caf::reacts_to<recover_atom, std::string>,
    /// Test hook (DCMSTREAMS_TEST_HOOKS=1): kills the senders to this
    /// destination as a crash would; replies whether there was one.
    caf::replies_to<kill_atom, std::string>::with<bool>,
    /// Sends a failed task again from its first unsent file; replies with it.
    caf::replies_to<retry_atom, std::int64_t>::with<send_task>,
    /// The newest send tasks, at most this many.
    caf::replies_to<get_atom, sends_atom, std::int64_t>::with<std::vector<send_task>>,
    /// A dry run: the sends the routing rules would make of this job now
    /// (with their file counts); nothing is recorded or sent.
    caf::replies_to<get_atom, route_atom, job_record>::with<std::vector<send_task>>,
    /// Sends the job's INPUT or OUTPUT (the last string) to a destination of
    /// the node configuration now; replies with the send.
    caf::replies_to<send_atom, job_record, std::string, std::string>::with<send_task>>;

/// Runs one stream's jobs in order, `concurrency` at a time.
using stream_mailbox_actor = caf::typed_actor<
    /// Adds a queued job at the end of the queue.
    caf::reacts_to<job_atom, job_record>,
    /// A run ended (from the job's runner).
    caf::reacts_to<finished_atom, job_record, job_outcome>,
    /// Cancels a queued or running job of this stream; replies whether it was found.
    caf::replies_to<cancel_atom, std::int64_t>::with<bool>,
    /// The stream's queue, running jobs and run times.
    caf::replies_to<get_atom, stats_atom>::with<stream_stats>,
    /// Timer after a restart: takes the stream's queued jobs back from the
    /// job store and starts running again.
    caf::reacts_to<recover_atom>,
    /// A slot of the cluster freed (from the slot table, after every slot
    /// was taken): tries again.
    caf::reacts_to<tick_atom>>;

/// Owns and supervises the stream mailboxes: routes new jobs to them, cancels
/// and re-runs, and restarts a mailbox that died (with back-off).
using job_manager_actor = caf::typed_actor<
    /// New jobs (queued or skipped) to run.
    caf::reacts_to<job_atom, std::vector<job_record>>,
    /// A run ended (from the job's runner): passed to the stream's mailbox,
    /// which may have been restarted since the run began.
    caf::reacts_to<finished_atom, job_record, job_outcome>,
    /// Test hook (DCMSTREAMS_TEST_HOOKS=1): kills the stream's mailbox as a
    /// crash would; replies whether there was one.
    caf::replies_to<kill_atom, std::string>::with<bool>,
    /// Cancels a queued or running job; replies whether it was found.
    caf::replies_to<cancel_atom, std::int64_t>::with<bool>,
    /// Queues a finished job again from a clean OUTPUT/; replies with the job.
    caf::replies_to<retry_atom, std::int64_t>::with<job_record>,
    /// Every stream's queue, running jobs and run times.
    caf::replies_to<get_atom, stats_atom>::with<std::vector<stream_stats>>>;

/// Groups arriving instances by (calling AE, called AE, peer, study) and turns
/// each group into a job after its quiet period or maximum wait.
using assembler_actor = caf::typed_actor<
    /// An instance is durable in incoming/ (from the listener or from recovery).
    caf::reacts_to<arrived_atom, study_key, arrived_instance>,
    /// The same, from the association on this peer port (for complete_on "release").
    caf::reacts_to<arrived_atom, study_key, arrived_instance, std::uint16_t>,
    /// The association from (called AE, calling AE, peer, peer port) was
    /// released: studies of streams with complete_on "release" complete once
    /// every association that stored instances of them is released.
    caf::reacts_to<released_atom, std::string, std::string, std::string, std::uint16_t>,
    /// Completes every pending group of the study now; replies how many.
    caf::replies_to<complete_atom, std::string>::with<std::uint64_t>,
    /// Lists the pending studies.
    caf::replies_to<get_atom, pending_atom>::with<std::vector<pending_study>>,
    /// Timer: checks whether a group's quiet period has passed.
    caf::reacts_to<tick_atom, study_key>,
    /// Timer: hands the replaced copies gathered so far to the job store.
    caf::reacts_to<discard_atom>>;

/// Tells a stream's notify targets that a job ended: a POST of the job as
/// JSON, retried; the outcome goes into the job's processing.log. Runs
/// detached (the POST blocks).
using notifier_actor = caf::typed_actor<
    /// Attempt `attempt` (from 1) to tell `url` that this job ended; `ca`:
    /// the authority an https server's certificate must chain to ("": the
    /// system's).
    caf::reacts_to<notify_atom, job_record, std::string, std::string, std::uint32_t>>;

/// Keeps the data disk from filling: above storage.scrub_high_pct it deletes
/// the oldest finished jobs until below scrub_low_pct, and jobs older than
/// retention_days; never queued or running jobs, pending studies or results
/// not yet sent. Runs detached (it removes folders).
using scrubber_actor = caf::typed_actor<
    /// Timer: one pass, then the next in storage.scrub_interval_s.
    caf::reacts_to<tick_atom>,
    /// One pass now; replies with what it deleted.
    caf::replies_to<scrub_atom>::with<scrub_report>>;

/// Sends C-ECHO to the node's own listener on an interval and restarts the
/// listener when it stops answering. Runs detached (the echo blocks).
using watchdog_actor = caf::typed_actor<
    /// Timer: one probe, then the next after the interval.
    caf::reacts_to<tick_atom>>;

/// A worker process's side of the cluster (docs/cluster.md).
using worker_actor = caf::typed_actor<
    /// The head's heartbeat: replies with the number of jobs running there.
    caf::replies_to<ping_atom>::with<std::uint32_t>,
    /// Runs a job for the head's runner (the caf::actor): replies with the
    /// run's own actor, which then speaks the attempt protocol below.
    caf::replies_to<run_atom, remote_job, caf::actor>::with<caf::actor>>;

// The attempt protocol between the head's runner of a job (a detached
// blocking actor, actors/remote_run.hpp) and the worker's run of it
// (actors/worker_run.hpp), plain messages in both directions:
//   receiver -> sender: (read_atom, uint32 file, uint64 offset)  asks for a chunk
//   sender -> receiver: (chunk_atom, uint32 file, uint64 offset, std::vector<char> data,
//                        std::string problem)                     an empty problem: data is good
//   worker -> runner:   (finished_atom, job_outcome, std::vector<transfer_file> results,
//                        bool shared)  shared: the results are in the shared folder already
//   runner -> worker:   (cancel_atom)  stop the run;  (done_atom)  results taken, clean up
// The worker first asks the runner for the inputs; the runner then asks the
// worker for the results (OUTPUT/, processing.log, proc.json); neither with
// a shared data folder. Each side
// monitors the other: a runner that is gone means the head gave the run up.

/// The head's side of the cluster, published on cluster.port: keeps the
/// workers that joined and notices those that die, hang or are cut off.
using cluster_head_actor = caf::typed_actor<
    /// A worker joins with its actor (a worker_actor); replies with the
    /// heartbeat interval in seconds, or refuses (a live worker has the name).
    caf::replies_to<enlist_atom, worker_info, caf::actor>::with<double>,
    /// Timer: one heartbeat to every connected worker.
    caf::reacts_to<tick_atom>,
    /// The workers, joined and lost, by name.
    caf::replies_to<get_atom, workers_atom>::with<std::vector<worker_status>>>;

/// Watches the streams folder and publishes a new registry when it changes.
using registry_actor = caf::typed_actor<
    /// Timer: compares the folder's fingerprint and reloads on change.
    caf::reacts_to<tick_atom>,
    /// Reloads now; replies with the number of streams loaded.
    caf::replies_to<reload_atom>::with<std::uint64_t>>;

} // namespace dcmstreams
