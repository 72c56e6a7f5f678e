#pragma once
// Users, passwords and sessions for the web interface (DESIGN §7): argon2id
// hashes from libsodium, a session cookie or HTTP Basic authentication, and
// two roles: admin may change things, viewer may look.

#include "pipeline/foundation/config.hpp"
#include "web/http.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams::web {

/// An argon2id hash of `password` in libsodium's string format ("$argon2id$v=19$...").
std::optional<std::string> hash_password(const std::string& password);
bool verify_password(const std::string& password, const std::string& hash);

struct user_session {
  std::string name;
  std::string role; // admin | viewer
};

class authenticator {
public:
  /// Without users every request is an admin's (only allowed on loopback).
  explicit authenticator(std::vector<user_config> users);

  bool required() const { return !users_.empty(); }

  /// Basic credentials that still need their (slow) password check.
  struct password_check {
    std::string name;
    std::string password;
    std::string cache_key; // keyed digest of the header, to remember a success
  };
  /// What can be known about a request without hashing: its user (session
  /// cookie, or Basic credentials that were right a moment ago), or the
  /// credentials to check, or neither (no or malformed credentials).
  struct quick_identity {
    std::optional<user_session> user;
    std::optional<password_check> check;
  };
  quick_identity identify_quickly(const http_request& request);
  /// The password check itself: tens of milliseconds and 64 MiB on purpose,
  /// so never on an I/O thread. Counts a failure against `client`.
  std::optional<user_session> check_password(const password_check& check,
                                             const std::string& client);
  /// Checks a name and password (slow, as check_password); on success a new
  /// session token. Counts a failure against `client`.
  std::optional<std::string> log_in(const std::string& name, const std::string& password,
                                    const std::string& client);
  void log_out(const http_request& request);
  /// How long `client` must wait before its next password is checked: after
  /// three wrong ones in a row, 250 ms doubling to 30 s. Zero: go ahead.
  std::chrono::milliseconds backoff(const std::string& client);

  static constexpr const char* cookie_name = "dcmstreams_session";

private:
  std::optional<user_session> check(const std::string& name, const std::string& password);
  void note_result(const std::string& client, bool succeeded);

  std::vector<user_config> users_;
  std::mutex mutex_;
  struct session_entry {
    user_session user;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, session_entry> sessions_;
  // Basic credentials that were right, by keyed digest of the header.
  std::map<std::string, session_entry> basic_cache_;
  unsigned char basic_cache_key_[32];
  struct client_failures {
    int count = 0;
    std::chrono::steady_clock::time_point blocked_until;
  };
  std::map<std::string, client_failures> failures_; // by client address
  static constexpr std::chrono::minutes basic_cache_lifetime{5};
};

/// Whether `bind` only listens on this machine (127.0.0.0/8 or ::1).
bool is_loopback(const std::string& bind);

} // namespace dcmstreams::web
