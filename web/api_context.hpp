#pragma once
// What every API handler works with: the node's actors and settings, the
// login checker, the dispatcher that asks actors, and the bounded pools that
// take blocking work off the I/O threads; and the small helpers that turn
// errors and query strings into answers. Private to web/.

#include "pipeline/jobs/store.hpp"
#include "web/api.hpp"
#include "web/preview_cache.hpp"
#include "web/request_guard.hpp"
#include "web/throughput_history.hpp"
#include "web/work_pool.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace dcmstreams::web {

/// No HTTP request waits longer than this for an actor.
constexpr auto actor_timeout = std::chrono::seconds(30);

struct api_context {
  api_context(caf::actor_system& system, api_settings settings, api_backend backend);

  caf::actor_system& system;
  api_settings settings;
  api_backend backend;
  authenticator auth;
  caf::actor dispatcher;
  store_layout layout;
  throughput_history history;
  request_guard_settings guard;
  // Series indexes and rendered PNGs of job folders (32 MiB of pictures).
  preview_cache previews{32 << 20};
  // Password checks (argon2id: ~50 ms and 64 MiB each): one thread, so that
  // a flood of wrong passwords costs one core at most and never the I/O threads.
  work_pool password_pool{"password check", 1, 32};
  // Reading job folders and unpacking uploads: blocking file work. The pools
  // are the last members, joined first when the context goes: every piece of
  // work they run may use the rest.
  work_pool file_pool{"job files", 2, 64};

  /// Runs `work` inside the dispatcher actor, which asks the other actors and
  /// answers when they do; no I/O thread waits for an actor.
  void ask(std::function<void(caf::event_based_actor*)> work);
};

/// The one table from the node's error codes to HTTP statuses.
unsigned http_status_of(ec code);
http_response failure_response(const caf::error& error);
http_response failure_response(const failure& problem);
/// The error handler of an actor request: answers with the error.
std::function<void(caf::error&)> answer_error(responder respond);
/// 503 with Retry-After: a bounded pool's queue is full.
http_response busy(const std::string& doing);

/// 429 with Retry-After while `client` must wait after wrong passwords.
std::optional<http_response> password_backoff(api_context& api, const std::string& client);

/// A whole number of at most 18 digits, or nothing.
std::optional<std::int64_t> parse_id(std::string_view text);
std::string query_value(const http_request& request, const std::string& name);
/// Reads `name` as a whole number in [min, max]; `fallback` when absent.
result<std::int64_t> query_number(const http_request& request, const std::string& name,
                                  std::int64_t fallback, std::int64_t min, std::int64_t max);

} // namespace dcmstreams::web
