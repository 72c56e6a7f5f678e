#include "net/certificate_authority.hpp"

#include "pipeline/foundation/files.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include <sys/stat.h>

namespace dcmstreams::net {

namespace fs = std::filesystem;

namespace {

// Long enough not to be a chore, short enough that a lost key expires.
constexpr long ca_days = 3650;
constexpr long member_days = 825;

struct free_key {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct free_certificate {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, free_key>;
using certificate_ptr = std::unique_ptr<X509, free_certificate>;

std::string openssl_error() {
  auto code = ERR_get_error();
  if (code == 0)
    return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

failure crypto_failure(const std::string& what) {
  return failure{ec::unspecified, what + ": " + openssl_error()};
}

key_ptr new_key() {
  return key_ptr{EVP_EC_gen("P-256")};
}

bool add_extension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  auto* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (!extension)
    return false;
  bool added = X509_add_ext(certificate, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return added;
}

/// A certificate for `key` named `name`, signed by `issuer_key` (itself
/// when `issuer` is null: the CA).
result<certificate_ptr> make_certificate(EVP_PKEY* key, const std::string& name, long days,
                                         X509* issuer, EVP_PKEY* issuer_key) {
  certificate_ptr certificate{X509_new()};
  if (!certificate)
    return crypto_failure("cannot make a certificate");
  auto* x = certificate.get();
  unsigned char serial_bytes[16];
  RAND_bytes(serial_bytes, sizeof serial_bytes);
  serial_bytes[0] &= 0x7f; // positive
  auto* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  bool ok = serial && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x));
  BN_free(serial);
  ok = ok && X509_set_version(x, 2) == 1;
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
       X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
  ok = ok && X509_set_pubkey(x, key) == 1;
  auto* subject = X509_get_subject_name(x);
  ok = ok && X509_NAME_add_entry_by_txt(
                 subject, "O", MBSTRING_UTF8,
                 reinterpret_cast<const unsigned char*>("dcmstreams cluster"), -1, -1, 0) == 1;
  ok = ok && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                                        -1, 0) == 1;
  auto* signer = issuer ? issuer : x;
  ok = ok && X509_set_issuer_name(x, X509_get_subject_name(signer)) == 1;
  if (issuer == nullptr) {
    ok = ok && add_extension(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    ok = ok && add_extension(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && add_extension(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
    ok = ok && add_extension(x, issuer, NID_key_usage, "critical,digitalSignature");
    ok = ok && add_extension(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  ok = ok && add_extension(x, signer, NID_subject_key_identifier, "hash");
  ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
  if (!ok)
    return crypto_failure("cannot make the certificate for " + name);
  return certificate;
}

/// Writes PEM text made by `write` into `file` (created new, `mode`).
template <class Write> status write_pem(const fs::path& file, unsigned mode, Write write) {
  auto* out = std::fopen(file.c_str(), "wx");
  if (!out)
    return failure{ec::io_error, file.string() + ": cannot create: " + errno_text(errno)};
  ::chmod(file.c_str(), mode);
  bool ok = write(out);
  ok = std::fclose(out) == 0 && ok;
  if (!ok)
    return crypto_failure(file.string() + ": cannot write");
  return std::nullopt;
}

status write_pair(const fs::path& dir, const std::string& stem, EVP_PKEY* key, X509* certificate) {
  if (auto problem = write_pem(dir / (stem + ".key"), 0600, [&](FILE* out) {
        return PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
      }))
    return problem;
  return write_pem(dir / (stem + ".pem"), 0644,
                   [&](FILE* out) { return PEM_write_X509(out, certificate) == 1; });
}

template <class T, class Read>
std::unique_ptr<T, void (*)(T*)> read_pem(const fs::path& file, Read read, void (*release)(T*)) {
  auto* in = std::fopen(file.c_str(), "r");
  T* value = in ? read(in) : nullptr;
  if (in)
    std::fclose(in);
  return {value, release};
}

} // namespace

status create_cluster_ca(const fs::path& dir) {
  if (fs::exists(dir / "ca.key") || fs::exists(dir / "ca.pem"))
    return failure{ec::conflict, (dir / "ca.pem").string() +
                                     ": a cluster CA is there already; certificates it signed "
                                     "would stop working if it were replaced (remove it first to "
                                     "start over)"};
  if (auto problem = create_directories(dir, false))
    return problem;
  auto key = new_key();
  if (!key)
    return crypto_failure("cannot make a key");
  auto certificate =
      make_certificate(key.get(), "dcmstreams cluster CA", ca_days, nullptr, nullptr);
  if (!certificate)
    return certificate.error();
  return write_pair(dir, "ca", key.get(), certificate->get());
}

status sign_cluster_certificate(const fs::path& ca_dir, const std::string& name,
                                const fs::path& out_dir) {
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
    return failure{ec::invalid_argument, "\"" + name +
                                             "\" cannot name a certificate file; use the name of "
                                             "the head or the worker (--name)"};
  auto ca_key = read_pem<EVP_PKEY>(
      ca_dir / "ca.key",
      [](FILE* in) { return PEM_read_PrivateKey(in, nullptr, nullptr, nullptr); }, EVP_PKEY_free);
  auto ca_certificate = read_pem<X509>(
      ca_dir / "ca.pem", [](FILE* in) { return PEM_read_X509(in, nullptr, nullptr, nullptr); },
      X509_free);
  if (!ca_key || !ca_certificate)
    return failure{ec::not_found, (ca_dir / "ca.pem").string() + " and ca.key: no cluster CA "
                                                                 "there (make one with "
                                                                 "`dcmstreams cluster-ca init`)"};
  if (fs::exists(out_dir / (name + ".pem")) || fs::exists(out_dir / (name + ".key")))
    return failure{ec::conflict, (out_dir / (name + ".pem")).string() +
                                     ": exists already; remove it to sign a new one"};
  if (auto problem = create_directories(out_dir, false))
    return problem;
  auto key = new_key();
  if (!key)
    return crypto_failure("cannot make a key");
  auto certificate =
      make_certificate(key.get(), name, member_days, ca_certificate.get(), ca_key.get());
  if (!certificate)
    return certificate.error();
  return write_pair(out_dir, name, key.get(), certificate->get());
}

} // namespace dcmstreams::net
