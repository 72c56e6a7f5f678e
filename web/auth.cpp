#include "web/auth.hpp"

#include <sodium.h>

#include <algorithm>
#include <mutex>

namespace dcmstreams::web {

namespace {

constexpr auto session_lifetime = std::chrono::hours(12);

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0)
      throw std::runtime_error("libsodium cannot be initialized");
  });
}

std::optional<std::string> base64_decode(const std::string& text) {
  std::string out(text.size(), '\0');
  std::size_t length = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.c_str(),
                        text.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  out.resize(length);
  return out;
}

std::string cookie_value(const http_request& request, const std::string& name) {
  auto it = request.headers.find("cookie");
  if (it == request.headers.end())
    return {};
  const std::string& cookies = it->second;
  std::size_t start = 0;
  while (start < cookies.size()) {
    auto end = cookies.find(';', start);
    auto pair = cookies.substr(start, end - start);
    auto first = pair.find_first_not_of(' ');
    if (first != std::string::npos)
      pair = pair.substr(first);
    if (pair.rfind(name + "=", 0) == 0)
      return pair.substr(name.size() + 1);
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return {};
}

} // namespace

std::optional<std::string> hash_password(const std::string& password) {
  init_sodium();
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, password.c_str(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return std::nullopt;
  return std::string(hash);
}

bool verify_password(const std::string& password, const std::string& hash) {
  init_sodium();
  return crypto_pwhash_str_verify(hash.c_str(), password.c_str(), password.size()) == 0;
}

authenticator::authenticator(std::vector<user_config> users) : users_(std::move(users)) {
  init_sodium();
  randombytes_buf(basic_cache_key_, sizeof basic_cache_key_);
}

std::optional<user_session> authenticator::check(const std::string& name,
                                                 const std::string& password) {
  for (auto& user : users_)
    if (user.name == name && verify_password(password, user.password_hash))
      return user_session{user.name, user.role};
  return std::nullopt;
}

authenticator::quick_identity authenticator::identify_quickly(const http_request& request) {
  if (!required())
    return {user_session{"local", "admin"}, std::nullopt};
  auto token = cookie_value(request, cookie_name);
  if (!token.empty()) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = sessions_.find(token);
    if (it != sessions_.end() && it->second.expires > std::chrono::steady_clock::now())
      return {it->second.user, std::nullopt};
  }
  auto header = request.headers.find("authorization");
  if (header == request.headers.end() || header->second.rfind("Basic ", 0) != 0)
    return {};
  // Checking an argon2id hash costs tens of milliseconds and 64 MiB on
  // purpose; scrapers and scripts send the same credentials with every
  // request, so a success is remembered for a while under a keyed digest
  // of the header (the credentials themselves are not kept).
  init_sodium();
  unsigned char digest[crypto_generichash_BYTES];
  crypto_generichash(digest, sizeof digest,
                     reinterpret_cast<const unsigned char*>(header->second.data()),
                     header->second.size(), basic_cache_key_, sizeof basic_cache_key_);
  std::string key(reinterpret_cast<const char*>(digest), sizeof digest);
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = basic_cache_.find(key);
    if (it != basic_cache_.end() && it->second.expires > std::chrono::steady_clock::now())
      return {it->second.user, std::nullopt};
  }
  auto decoded = base64_decode(header->second.substr(6));
  if (!decoded)
    return {};
  auto colon = decoded->find(':');
  if (colon == std::string::npos)
    return {};
  return {std::nullopt, password_check{decoded->substr(0, colon), decoded->substr(colon + 1), key}};
}

std::optional<user_session> authenticator::check_password(const password_check& check,
                                                          const std::string& client) {
  auto user = this->check(check.name, check.password);
  note_result(client, user.has_value());
  if (user) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (basic_cache_.size() > 1000)
      basic_cache_.clear();
    basic_cache_[check.cache_key] = {*user,
                                     std::chrono::steady_clock::now() + basic_cache_lifetime};
  }
  return user;
}

std::chrono::milliseconds authenticator::backoff(const std::string& client) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto it = failures_.find(client);
  if (it == failures_.end())
    return std::chrono::milliseconds{0};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      it->second.blocked_until - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds{0});
}

void authenticator::note_result(const std::string& client, bool succeeded) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (succeeded) {
    failures_.erase(client);
    return;
  }
  // Bounded memory whatever the number of clients: forget everyone at once.
  if (failures_.size() > 10000)
    failures_.clear();
  auto& entry = failures_[client];
  ++entry.count;
  if (entry.count >= 3) {
    auto delay = std::chrono::milliseconds{250 << std::min(entry.count - 3, 7)};
    entry.blocked_until =
        std::chrono::steady_clock::now() + std::min(delay, std::chrono::milliseconds{30000});
  }
}

std::optional<std::string> authenticator::log_in(const std::string& name,
                                                 const std::string& password,
                                                 const std::string& client) {
  auto user = check(name, password);
  note_result(client, user.has_value());
  if (!user)
    return std::nullopt;
  init_sodium();
  unsigned char random[32];
  randombytes_buf(random, sizeof random);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, random, sizeof random);
  std::lock_guard<std::mutex> guard{mutex_};
  sessions_[hex] = {*user, std::chrono::steady_clock::now() + session_lifetime};
  return std::string(hex);
}

void authenticator::log_out(const http_request& request) {
  auto token = cookie_value(request, cookie_name);
  std::lock_guard<std::mutex> guard{mutex_};
  sessions_.erase(token);
}

bool is_loopback(const std::string& bind) {
  return bind.rfind("127.", 0) == 0 || bind == "::1" || bind == "localhost";
}

} // namespace dcmstreams::web
