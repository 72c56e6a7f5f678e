// Works around CAF 0.17's OpenSSL module: it never clears OpenSSL's
// per-thread error queue, and every cluster connection runs on the one
// middleman thread. After one peer failed its handshake (a worker with a
// foreign certificate), the error it left made SSL_get_error report the next
// harmless "want read" of a good connection as fatal, and CAF closed every
// worker's connection, again at each attempt of the foreign one. OpenSSL
// asks for an empty queue before each I/O call (SSL_get_error(3)); these
// definitions in the executable come first in symbol lookup, empty the queue
// and call the real functions.

#include "actors/cluster.hpp"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class Function> Function real(const char* name) {
  return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buffer, int size) {
  static auto call = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return call(ssl, buffer, size);
}

int SSL_write(SSL* ssl, const void* buffer, int size) {
  static auto call = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return call(ssl, buffer, size);
}

int SSL_accept(SSL* ssl) {
  static auto call = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return call(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto call = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return call(ssl);
}

} // extern "C"

namespace dcmstreams {

bool openssl_error_queue_kept_clean() {
  // Present when this file is linked (configure_cluster refers to it).
  return real<void*>("SSL_read") != nullptr;
}

} // namespace dcmstreams
