#include "web/auth.hpp"

#include <sodium.h>

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

std::optional<user_session> authenticator::identify(const http_request& request) {
  if (!required())
    return user_session{"local", "admin"};
  auto token = cookie_value(request, cookie_name);
  if (!token.empty()) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = sessions_.find(token);
    if (it != sessions_.end() && it->second.expires > std::chrono::steady_clock::now())
      return it->second.user;
  }
  auto header = request.headers.find("authorization");
  if (header == request.headers.end() || header->second.rfind("Basic ", 0) != 0)
    return std::nullopt;
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
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto it = basic_cache_.find(key);
    if (it != basic_cache_.end() && it->second.expires > now)
      return it->second.user;
  }
  auto decoded = base64_decode(header->second.substr(6));
  if (!decoded)
    return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos)
    return std::nullopt;
  auto user = check(decoded->substr(0, colon), decoded->substr(colon + 1));
  if (user) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (basic_cache_.size() > 1000)
      basic_cache_.clear();
    basic_cache_[key] = {*user, now + basic_cache_lifetime};
  }
  return user;
}

std::optional<std::string> authenticator::log_in(const std::string& name,
                                                 const std::string& password) {
  auto user = check(name, password);
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
