#pragma once
// A send of one job's files to one destination (routing), and each file's
// progress: what the router records before anything is sent and the sender
// updates file by file (DESIGN §6). The policy that moves a send from state
// to state is pipeline/routing/send_policy.hpp.

#include "pipeline/jobs/job.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dcmstreams {

enum class send_state {
  queued,   // recorded, not yet attempted
  sending,  // an attempt is under way
  retrying, // an attempt left files unstored; the next waits for next_attempt
  done,     // every file stored
  failed,   // attempts used up, or files gone: retried only on request
};

const char* to_string(send_state state);
std::optional<send_state> parse_send_state(std::string_view text);
/// Done or failed: the sender will not touch it again on its own.
bool is_finished(send_state state);

enum class file_send_state {
  pending, // not attempted yet, or not reached (no association): sent next attempt
  sent,    // the destination stored it (DIMSE success)
  warning, // stored with a warning status
  refused, // the destination answered a failure status; tried again next attempt
  missing, // the file no longer exists (its job was deleted): never sent
};

const char* to_string(file_send_state state);
std::optional<file_send_state> parse_file_send_state(std::string_view text);
/// Sent or warning: the destination has it.
bool is_stored(file_send_state state);

struct send_task {
  std::int64_t id = 0;
  std::int64_t job_id = 0;
  std::string rule;
  std::string destination; // the `destinations` entry, or "AET@host:port"
  std::string host;
  std::int64_t port = 0;
  std::string called_ae;
  std::string calling_ae;
  std::int64_t associations = 1;
  std::string transfer_syntax;
  std::string deidentify; // destination_config::deidentify
  send_state state = send_state::queued;
  std::int64_t attempts = 0;
  epoch_ms created = 0;
  epoch_ms next_attempt = 0;
  epoch_ms finished = 0;
  std::string message;
  std::int64_t files_total = 0;
  std::int64_t files_sent = 0;   // stored (success or warning)
  std::int64_t files_failed = 0; // refused in the last attempt, or missing
};

struct send_file {
  std::string path;
  file_send_state state = file_send_state::pending;
  std::int64_t status = 0; // DIMSE status of the last response
  std::string message;
};

} // namespace dcmstreams
