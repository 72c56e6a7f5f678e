#pragma once
// Users, passwords and sessions for the web interface (DESIGN §7): argon2id
// hashes from libsodium, a session cookie or HTTP Basic authentication, and
// two roles: admin may change things, viewer may look.

#include "pipeline/config.hpp"
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
  /// The user a request comes from: session cookie or Basic credentials.
  std::optional<user_session> identify(const http_request& request);
  /// Checks a name and password; on success a new session token.
  std::optional<std::string> log_in(const std::string& name, const std::string& password);
  void log_out(const http_request& request);

  static constexpr const char* cookie_name = "dcmstreams_session";

private:
  std::optional<user_session> check(const std::string& name, const std::string& password);

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
  static constexpr std::chrono::minutes basic_cache_lifetime{5};
};

/// Whether `bind` only listens on this machine (127.0.0.0/8 or ::1).
bool is_loopback(const std::string& bind);

} // namespace dcmstreams::web
