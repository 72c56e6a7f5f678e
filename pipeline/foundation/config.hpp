#pragma once
// The node configuration, dcmstreams.json (DESIGN §5). Every key is optional;
// the defaults make `dcmstreams serve` work from a fresh checkout.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

/// When a received instance is made durable before success is answered.
enum class sync_mode {
  instance,    // fdatasync the file and fsync its folder before each success status
  association, // sync everything written at the end of each association
  none,        // rename only: survives a crash of the node, not of the machine
};

const char* to_string(sync_mode mode);

/// The DICOM TLS listener (PS3.15 B.1 with BCP 195): a second port with the
/// same streams, durable path and limits as the plain one. PEM files.
struct dicom_tls_listener_config {
  std::uint16_t port = 0;
  std::string certificate; // the node's own certificate and key
  std::string key;
  std::string ca; // the authority client certificates must chain to
  /// Without a client certificate a connection is refused (mutual TLS).
  bool require_client_certificate = true;
  /// "bcp195-nd" (non-downgrading: TLS 1.2 and 1.3, the ciphersuites RFC 7525
  /// recommends), "bcp195" (also TLS 1.1 peers' suites) or "bcp195-ex"
  /// (extended: only TLS 1.2+ AEAD suites with forward secrecy).
  std::string profile = "bcp195-nd";
  /// Empty: any certificate of `ca`. Else each entry is a subject common name
  /// or a SHA-256 fingerprint (hex, colons allowed) of an accepted certificate.
  std::vector<std::string> allowed_certificates;
};

struct dicom_config {
  std::uint16_t port = 11113;
  std::string bind = "0.0.0.0";
  int max_associations = 32;
  /// Entries "AET", "@address", "@address/prefix" or "AET@address"; empty allows all.
  std::vector<std::string> allowed_callers;
  int acse_timeout_s = 30;
  int dimse_timeout_s = 60;
  std::uint32_t max_pdu = 131072;
  /// How often the watchdog sends C-ECHO to the listener; 0 turns it off.
  double watchdog_interval_s = 30;
  /// Set: a second listener takes associations over TLS.
  std::optional<dicom_tls_listener_config> tls;
};

struct user_config {
  std::string name;
  std::string password_hash;
  std::string role; // admin | viewer
};

struct web_config {
  std::uint16_t port = 2813;
  std::string bind = "127.0.0.1";
  std::vector<user_config> users;
  /// Names users type to reach the node (besides addresses and loopback
  /// names); a request with any other Host is refused (DNS rebinding).
  std::vector<std::string> hostnames;
  /// A client has this long to send a request's headers (and each part of a
  /// body); slower ones are closed.
  int read_timeout_s = 30;
  /// Viewers see jobs without the patient's name and ID and the accession
  /// number, cannot search by them, and cannot download instances.
  bool mask_patient_for_viewers = false;
};

/// A quiet period, in the node configuration and in a stream's info.json.
inline bool quiet_period_accepted(double seconds) {
  return seconds > 0 && seconds <= 86400;
}
constexpr const char* quiet_period_requirement = "more than 0 and at most 86400 seconds";

struct completion_config {
  double quiet_period_s = 15.0;
  double max_wait_s = 3600.0;
  /// Instances of completed studies waiting for their jobs above which
  /// ingest answers wait for job creation to catch up (0: never).
  std::uint64_t max_backlog = 20000;
};

struct storage_config {
  sync_mode sync = sync_mode::instance;
  std::uint64_t reserve_free_mb = 1024;
  /// Size of each ingest journal segment (data sets above 1 MiB, or a
  /// quarter of a segment, are stored as files instead).
  std::uint64_t journal_segment_mb = 32;
  double scrub_high_pct = 90.0;
  double scrub_low_pct = 80.0;
  double retention_days = 0.0;  // 0 keeps finished jobs until disk pressure
  bool scrub_dry_run = false;   // log what the scrubber would delete, delete nothing
  double scrub_interval_s = 60; // how often the scrubber looks
};

/// DICOM over TLS (PS3.15 B.1, BCP 195): the authority the peer's
/// certificate must chain to, and the node's own certificate and key when the
/// peer asks for one (both or neither). PEM files.
struct dicom_tls_files {
  std::string ca;
  std::string certificate;
  std::string key;
};

/// A DICOMweb destination: results are sent by STOW-RS (PS3.18 10.5).
struct dicomweb_target {
  std::string url;      // the service's base: STOW-RS posts to url + "/studies"
  std::string username; // HTTP Basic authentication, with password
  std::string password;
  std::string bearer_token; // or an OAuth bearer token
  std::string ca;           // https: the server's authority (default: the system's)
};

struct destination_config {
  std::string name;
  std::string host;
  std::uint16_t port = 104;
  std::string ae_title;
  std::string calling_ae_title;
  int associations = 1;
  std::string transfer_syntax; // empty: send as stored
  /// De-identify copies before sending (the stream kernel's profile and
  /// pseudonyms): "" no, "basic", or "shift_dates" (dates moved, not removed).
  std::string deidentify;
  /// Set: sent over TLS (BCP 195) with these PEM files. The paths are
  /// checked to be files when the configuration is read.
  std::optional<dicom_tls_files> tls;
  /// Set: sent by STOW-RS instead of C-STORE; host and port are the URL's.
  std::optional<dicomweb_target> dicomweb;
};

/// How results leave the node (routing issue): retries and the `$me`/`$port`
/// placeholders of routing.json.
struct sending_config {
  double retry_initial_s = 2; // first wait after a failed attempt
  double retry_factor = 2;    // each further wait is this much longer
  double retry_max_s = 300;   // but never longer than this
  int max_attempts = 10;      // then the send waits in `failed` until retried
  int timeout_s = 60;         // for a destination's association answer and each store's answer
  std::string default_host = "127.0.0.1"; // $me
  std::uint16_t default_port = 104;       // $port
};

/// The head's side of scale-out (docs/cluster.md): workers connect to it.
/// Mutual TLS between head and workers (docs/cluster.md): each side shows a
/// certificate the cluster CA signed and trusts no other.
struct cluster_tls {
  std::filesystem::path certificate; // PEM
  std::filesystem::path key;         // PEM, unencrypted
  std::filesystem::path ca;          // the cluster CA's certificate
  bool on() const { return !certificate.empty(); }
};

struct cluster_config {
  std::uint16_t port = 0;         // 0: no cluster, jobs run on this node only
  std::string bind = "127.0.0.1"; // any address with tls; a loopback one without
  cluster_tls tls;
  /// How often the head asks each worker whether it is alive, and how long
  /// a worker may leave that unanswered before it counts as lost.
  double heartbeat_s = 1;
  double lost_after_s = 5;
  /// Jobs the head runs itself at a time while it has a cluster port; 0: only
  /// workers run jobs (de-identifying ones excepted, which need the node's
  /// secret). Default: the head's hardware threads.
  std::uint32_t head_slots = default_head_slots();
  /// Workers that see data_dir at the same path (a shared file system) use
  /// it instead of receiving inputs and sending results in chunks.
  bool shared_data = false;
  static std::uint32_t default_head_slots();
};

/// What de-identification (in streams and on the way to destinations) needs.
struct pseudonym_settings {
  std::filesystem::path key_file; // the secret that keys pseudonyms
  bool keep_mapping = false;      // record what each pseudonym stands for
};

struct node_config {
  std::string ae_title = "DCMSTREAMS";
  dicom_config dicom;
  web_config web;
  std::filesystem::path data_dir = "data";
  std::filesystem::path streams_dir = "streams/library";
  std::filesystem::path routing_file = "routing.json";
  bool routing_file_named = false; // by --routing: its absence is then a problem
  completion_config completion;
  storage_config storage;
  sending_config sending;
  std::map<std::string, destination_config> destinations;
  cluster_config cluster;
  /// deidentify.secret_file: the key of de-identification pseudonyms; empty:
  /// the node's own, made at first start (pseudonyms()).
  std::filesystem::path deidentify_secret_file;
  /// deidentify.keep_mapping: pseudonyms and what they stand for are kept
  /// in the database, for an admin to look up.
  bool deidentify_keep_mapping = false;
  std::string log_level = "info";
  /// The file the configuration came from, empty for built-in defaults.
  std::filesystem::path source;

  /// The secret (deidentify.secret_file, or <data>/deidentify.key) and whether
  /// mappings are kept.
  pseudonym_settings pseudonyms() const {
    return {deidentify_secret_file.empty() ? data_dir / "deidentify.key" : deidentify_secret_file,
            deidentify_keep_mapping};
  }
};

/// Parses dcmstreams.json text; every problem is reported, each naming the key.
result<node_config> parse_node_config(std::string_view text, const std::string& source);
/// Loads dcmstreams.json; relative folders in it are taken relative to the file.
result<node_config> load_node_config(const std::filesystem::path& path);

/// Checks an AE title: 1 to 16 characters, no backslash or control characters,
/// not only spaces. Returns what is wrong, or nothing.
std::optional<std::string> check_ae_title(std::string_view title);

/// Whether `address` is a loopback address (127.0.0.0/8 or ::1).
bool is_loopback_address(std::string_view address);

/// Checks a host to connect to: an IPv4 or IPv6 address, or a DNS name
/// (labels of letters, digits and hyphens). Returns what is wrong, or nothing.
std::optional<std::string> check_host(std::string_view host);

} // namespace dcmstreams
