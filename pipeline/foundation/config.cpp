#include "pipeline/foundation/config.hpp"
#include "pipeline/foundation/allowed_callers.hpp"
#include "pipeline/foundation/http_url.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/foundation/log.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <thread>

namespace dcmstreams {

const char* to_string(sync_mode mode) {
  switch (mode) {
  case sync_mode::instance:
    return "instance";
  case sync_mode::association:
    return "association";
  case sync_mode::none:
    return "none";
  }
  return "?";
}

std::optional<std::string> check_ae_title(std::string_view title) {
  if (title.empty())
    return "an AE title must not be empty";
  if (title.size() > 16)
    return "an AE title has at most 16 characters, \"" + std::string(title) + "\" has " +
           std::to_string(title.size());
  for (char c : title)
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
      return "an AE title may hold only printable ASCII characters without backslash";
  if (std::all_of(title.begin(), title.end(), [](char c) { return c == ' '; }))
    return "an AE title must not be only spaces";
  return std::nullopt;
}

bool is_loopback_address(std::string_view address) {
  std::string text{address};
  unsigned char bytes[16];
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1)
    return bytes[0] == 127;
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1)
    return std::all_of(bytes, bytes + 15, [](unsigned char b) { return b == 0; }) && bytes[15] == 1;
  return false;
}

std::optional<std::string> check_host(std::string_view host) {
  if (host.empty())
    return std::string("is empty: give the destination's address or DNS name");
  std::string text{host};
  unsigned char address[16];
  if (inet_pton(AF_INET, text.c_str(), address) == 1 ||
      inet_pton(AF_INET6, text.c_str(), address) == 1)
    return std::nullopt;
  auto bad = std::string("\"") + text + "\" is neither an IP address nor a DNS name";
  if (host.size() > 253)
    return bad;
  std::size_t start = 0;
  while (start <= host.size()) {
    auto end = host.find('.', start);
    auto label = host.substr(start, end == std::string_view::npos ? end : end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return bad;
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
        return bad;
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  return std::nullopt;
}

namespace {

void read_port(json::object_reader& reader, std::string_view key, std::uint16_t& out) {
  if (auto port = reader.get_integer(key, 1, 65535))
    out = static_cast<std::uint16_t>(*port);
}

void read_ae_title(json::object_reader& reader, std::string_view key, std::string& out) {
  if (auto title = reader.get_string(key)) {
    if (auto problem = check_ae_title(*title))
      reader.sink().add(reader.path_of(key), *problem);
    else
      out = *title;
  }
}

// dicom.tls: the TLS listener's port and PEM files (relative ones are made
// relative to the configuration file by load_node_config; the listener says
// which file it cannot load when it starts).
void read_dicom_tls_listener(json::object_reader& reader, dicom_tls_listener_config& tls) {
  reader.reject_unknown_keys({"port", "certificate", "key", "ca", "require_client_certificate",
                              "profile", "allowed_certificates"});
  read_port(reader, "port", tls.port);
  if (!reader.has("port"))
    reader.sink().add(reader.path_of("port"), "is needed: the port TLS associations come to "
                                              "(2762 is the one DICOM registered for TLS)");
  for (auto [key, target] : {std::pair{"certificate", &tls.certificate}, std::pair{"key", &tls.key},
                             std::pair{"ca", &tls.ca}})
    if (auto value = reader.get_string(key))
      *target = *value;
  if (auto required = reader.get_flag("require_client_certificate"))
    tls.require_client_certificate = *required;
  if (auto profile = reader.get_string("profile")) {
    if (*profile != "bcp195-nd" && *profile != "bcp195" && *profile != "bcp195-ex")
      reader.sink().add(reader.path_of("profile"),
                        "must be \"bcp195-nd\" (the default), \"bcp195\" or \"bcp195-ex\"");
    tls.profile = *profile;
  }
  if (auto allowed = reader.get_string_list("allowed_certificates"))
    tls.allowed_certificates = *allowed;
  if (tls.certificate.empty() || tls.key.empty())
    reader.sink().add(reader.path_of("certificate"),
                      "the node's own \"certificate\" and \"key\" (PEM files) are both needed");
  if (tls.ca.empty() && (tls.require_client_certificate || !tls.allowed_certificates.empty()))
    reader.sink().add(reader.path_of("ca"),
                      "is needed to check client certificates: the PEM file of the authority "
                      "that signs them (or set require_client_certificate to false)");
}

void read_dicom(json::object_reader& reader, dicom_config& dicom) {
  reader.reject_unknown_keys({"port", "bind", "max_associations", "allowed_callers",
                              "acse_timeout_s", "dimse_timeout_s", "max_pdu", "watchdog_interval_s",
                              "tls"});
  read_port(reader, "port", dicom.port);
  if (auto bind = reader.get_string("bind"))
    dicom.bind = *bind;
  if (auto n = reader.get_integer("max_associations", 1, 4096))
    dicom.max_associations = static_cast<int>(*n);
  if (auto callers = reader.get_string_list("allowed_callers")) {
    if (auto problem = check_allowed_callers(*callers))
      reader.sink().add(reader.path_of("allowed_callers"), *problem);
    else
      dicom.allowed_callers = *callers;
  }
  if (auto t = reader.get_integer("acse_timeout_s", 1, 3600))
    dicom.acse_timeout_s = static_cast<int>(*t);
  if (auto t = reader.get_integer("dimse_timeout_s", 1, 86400))
    dicom.dimse_timeout_s = static_cast<int>(*t);
  // DICOM allows 4096 up to 2^32-1; DCMTK receives at most 131072 per PDU.
  if (auto pdu = reader.get_integer("max_pdu", 4096, 131072))
    dicom.max_pdu = static_cast<std::uint32_t>(*pdu);
  if (auto interval = reader.get_number("watchdog_interval_s", json::at_least_zero,
                                        "0 (no watchdog) or more seconds"))
    dicom.watchdog_interval_s = *interval;
  reader.with_object("tls", [&](json::object_reader& sub) {
    read_dicom_tls_listener(sub, dicom.tls.emplace());
    if (dicom.tls->port != 0 && dicom.tls->port == dicom.port)
      sub.sink().add(sub.path_of("port"), "must differ from dicom.port (" +
                                              std::to_string(dicom.port) +
                                              "), where plain associations come");
  });
}

void read_web(json::object_reader& reader, web_config& web) {
  reader.reject_unknown_keys(
      {"port", "bind", "users", "hostnames", "read_timeout_s", "mask_patient_for_viewers"});
  if (auto mask = reader.get_flag("mask_patient_for_viewers"))
    web.mask_patient_for_viewers = *mask;
  if (auto timeout = reader.get_integer("read_timeout_s", 1, 3600))
    web.read_timeout_s = static_cast<int>(*timeout);
  read_port(reader, "port", web.port);
  if (auto bind = reader.get_string("bind"))
    web.bind = *bind;
  if (auto hostnames = reader.get_string_list("hostnames"))
    web.hostnames = *hostnames;
  if (auto users = reader.get_array("users")) {
    std::size_t index = 0;
    for (auto& element : *users) {
      std::string path = reader.path_of("users") + "[" + std::to_string(index++) + "]";
      if (!element.is_object()) {
        reader.sink().add(path, "must be an object with name, password_hash and role");
        continue;
      }
      json::object_reader user_reader{element, path, reader.sink()};
      user_reader.reject_unknown_keys({"name", "password_hash", "role"});
      user_config user;
      auto name = user_reader.get_string("name");
      auto hash = user_reader.get_string("password_hash");
      auto role = user_reader.get_string("role");
      if (!name || name->empty())
        reader.sink().add(path, "needs a \"name\"");
      if (!hash || hash->empty())
        reader.sink().add(path, "needs a \"password_hash\" (create one with `dcmstreams passwd`)");
      else if (hash->rfind("$argon2id$", 0) != 0 && hash->rfind("$argon2i$", 0) != 0)
        reader.sink().add(path + ".password_hash",
                          "is not an argon2 hash, so no password matches it; make one with "
                          "`dcmstreams passwd`");
      if (!role || (*role != "admin" && *role != "viewer"))
        reader.sink().add(path + ".role", "must be \"admin\" or \"viewer\"");
      if (name && hash && role) {
        user.name = *name;
        user.password_hash = *hash;
        user.role = *role;
        web.users.push_back(user);
      }
    }
  }
}

void read_completion(json::object_reader& reader, completion_config& completion) {
  reader.reject_unknown_keys({"quiet_period_s", "max_wait_s", "max_backlog"});
  if (auto quiet =
          reader.get_number("quiet_period_s", quiet_period_accepted, quiet_period_requirement))
    completion.quiet_period_s = *quiet;
  if (auto wait = reader.get_number("max_wait_s", json::above_zero, "more than 0 seconds"))
    completion.max_wait_s = *wait;
  if (auto backlog = reader.get_integer("max_backlog", 0, std::int64_t{1} << 40))
    completion.max_backlog = static_cast<std::uint64_t>(*backlog);
}

void read_storage(json::object_reader& reader, storage_config& storage) {
  reader.reject_unknown_keys({"sync", "reserve_free_mb", "journal_segment_mb", "scrub_high_pct",
                              "scrub_low_pct", "retention_days", "scrub_dry_run",
                              "scrub_interval_s"});
  if (auto sync = reader.get_string("sync")) {
    if (*sync == "instance")
      storage.sync = sync_mode::instance;
    else if (*sync == "association")
      storage.sync = sync_mode::association;
    else if (*sync == "none")
      storage.sync = sync_mode::none;
    else
      reader.sink().add(reader.path_of("sync"),
                        "must be \"instance\", \"association\" or \"none\", not \"" + *sync + "\"");
  }
  if (auto reserve = reader.get_integer("reserve_free_mb", 0, std::int64_t{1} << 40))
    storage.reserve_free_mb = static_cast<std::uint64_t>(*reserve);
  if (auto segment = reader.get_integer("journal_segment_mb", 1, 4096))
    storage.journal_segment_mb = static_cast<std::uint64_t>(*segment);
  auto percentage = [](double v) { return v > 0 && v <= 100; };
  for (auto [key, out] : {std::pair{"scrub_high_pct", &storage.scrub_high_pct},
                          std::pair{"scrub_low_pct", &storage.scrub_low_pct}})
    if (auto value = reader.get_number(key, percentage, "a percentage above 0 and at most 100"))
      *out = *value;
  if (storage.scrub_low_pct >= storage.scrub_high_pct)
    reader.sink().add(reader.path_of("scrub_low_pct"), "must be below scrub_high_pct");
  if (auto days = reader.get_number("retention_days", json::at_least_zero, "0 (keep) or more days"))
    storage.retention_days = *days;
  if (auto dry = reader.get_flag("scrub_dry_run"))
    storage.scrub_dry_run = *dry;
  if (auto interval =
          reader.get_number("scrub_interval_s", json::above_zero, "more than 0 seconds"))
    storage.scrub_interval_s = *interval;
}

void read_sending(json::object_reader& reader, sending_config& sending) {
  reader.reject_unknown_keys({"retry_initial_s", "retry_factor", "retry_max_s", "max_attempts",
                              "timeout_s", "default_host", "default_port"});
  for (auto [key, out] : {std::pair{"retry_initial_s", &sending.retry_initial_s},
                          std::pair{"retry_max_s", &sending.retry_max_s}})
    if (auto value = reader.get_number(key, json::above_zero, "more than 0"))
      *out = *value;
  if (auto f = reader.get_number("retry_factor", json::at_least_one, "at least 1"))
    sending.retry_factor = *f;
  if (auto n = reader.get_integer("max_attempts", 1, 1000))
    sending.max_attempts = static_cast<int>(*n);
  if (auto t = reader.get_integer("timeout_s", 1, 3600))
    sending.timeout_s = static_cast<int>(*t);
  if (auto host = reader.get_string("default_host"))
    sending.default_host = *host;
  read_port(reader, "default_port", sending.default_port);
}

} // namespace

std::uint32_t cluster_config::default_head_slots() {
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {

void read_cluster_tls(json::object_reader& reader, cluster_tls& tls) {
  reader.reject_unknown_keys({"certificate", "key", "ca"});
  for (auto [key, path] : {std::pair{"certificate", &tls.certificate}, std::pair{"key", &tls.key},
                           std::pair{"ca", &tls.ca}}) {
    auto value = reader.get_string(key);
    if (!value || value->empty()) {
      reader.sink().add(reader.path_of(key),
                        "is required for TLS: a PEM file (dcmstreams cluster-ca makes them)");
      continue;
    }
    *path = *value;
  }
}

void read_cluster(json::object_reader& reader, cluster_config& cluster) {
  reader.reject_unknown_keys(
      {"port", "bind", "tls", "heartbeat_s", "lost_after_s", "head_slots", "shared_data"});
  read_port(reader, "port", cluster.port);
  reader.with_object("tls", [&](json::object_reader& sub) { read_cluster_tls(sub, cluster.tls); });
  if (auto bind = reader.get_string("bind")) {
    // Workers are trusted with whole studies: without TLS the cluster port
    // stays on this machine.
    if (!cluster.tls.on() && !is_loopback_address(*bind))
      reader.sink().add(reader.path_of("bind"),
                        "\"" + *bind +
                            "\" is not a loopback address; without cluster.tls the cluster port "
                            "speaks plain TCP, so it is only opened on 127.0.0.1 or ::1");
    else
      cluster.bind = *bind;
  }
  if (auto h = reader.get_number("heartbeat_s", json::above_zero, "more than 0"))
    cluster.heartbeat_s = *h;
  if (auto lost = reader.get_number("lost_after_s", json::above_zero, "more than 0"))
    cluster.lost_after_s = *lost;
  if (auto shared = reader.get_flag("shared_data"))
    cluster.shared_data = *shared;
  if (auto slots = reader.get_integer("head_slots", 0, 4096))
    cluster.head_slots = static_cast<std::uint32_t>(*slots);
  if (cluster.lost_after_s <= cluster.heartbeat_s)
    reader.sink().add(reader.path_of("lost_after_s"),
                      "must be longer than heartbeat_s (" + std::to_string(cluster.heartbeat_s) +
                          " s), or every worker counts as lost between two heartbeats");
}

// A destination's "tls": {"ca", "certificate", "key"}; each a PEM file that
// exists, certificate and key together.
dicom_tls_files read_dicom_tls(json::object_reader& parent, const json::value& object,
                               const std::string& path) {
  json::object_reader reader{object, path, parent.sink()};
  reader.reject_unknown_keys({"ca", "certificate", "key"});
  dicom_tls_files files;
  for (auto [key, target] :
       {std::pair{"ca", &files.ca}, std::pair{"certificate", &files.certificate},
        std::pair{"key", &files.key}}) {
    auto value = reader.get_string(key);
    if (!value)
      continue;
    std::error_code error;
    if (!std::filesystem::is_regular_file(*value, error))
      reader.sink().add(path + "." + key, "\"" + *value + "\" is not a file (PEM expected)");
    *target = *value;
  }
  if (files.ca.empty())
    reader.sink().add(path, "needs \"ca\": the PEM file of the authority that signed the "
                            "destination's certificate");
  if (files.certificate.empty() != files.key.empty())
    reader.sink().add(path, "needs both \"certificate\" and \"key\" (the node's own, for a "
                            "destination that asks for one), or neither");
  return files;
}

// A destination's "deidentify": true, false or {"shift_dates": bool}.
void read_destination_deidentify(json::object_reader& d, destination_config& destination) {
  auto* found = d.get("deidentify");
  if (!found)
    return;
  auto& value = *found;
  if (value.is_boolean())
    destination.deidentify = value.get<bool>() ? "basic" : "";
  else if (value.is_object() && value.size() == 1 && value.contains("shift_dates") &&
           value["shift_dates"].is_boolean())
    destination.deidentify = value["shift_dates"].get<bool>() ? "shift_dates" : "basic";
  else
    d.sink().add(d.path_of("deidentify"), "must be true, false or {\"shift_dates\": true}");
}

// A destination {"dicomweb": URL, "auth": {...}, "ca": PEM}: STOW-RS, its
// host and port from the URL.
void read_dicomweb_destination(json::object_reader& d, destination_config& destination) {
  d.reject_unknown_keys({"dicomweb", "auth", "ca", "deidentify"});
  dicomweb_target target;
  target.url = d.get_string("dicomweb").value_or("");
  while (!target.url.empty() && target.url.back() == '/')
    target.url.pop_back();
  if (auto url = parse_http_url(target.url)) {
    destination.host = url->host;
    destination.port = url->port;
  } else {
    d.sink().add(d.path_of("dicomweb"), url.error().message +
                                            " (the DICOMweb service's base URL, such as "
                                            "http://pacs:8042/dicom-web)");
  }
  d.with_object("auth", [&](json::object_reader& auth) {
    auth.reject_unknown_keys({"username", "password", "bearer_token"});
    target.username = auth.get_string("username").value_or("");
    target.password = auth.get_string("password").value_or("");
    target.bearer_token = auth.get_string("bearer_token").value_or("");
    bool basic = !target.username.empty() && !target.password.empty();
    bool bearer = !target.bearer_token.empty();
    bool partial = target.username.empty() != target.password.empty();
    if (basic == bearer || partial)
      auth.sink().add(d.path_of("auth"),
                      "needs \"username\" and \"password\" (HTTP Basic) or a \"bearer_token\"");
  });
  if (auto ca = d.get_string("ca")) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(*ca, error))
      d.sink().add(d.path_of("ca"), "\"" + *ca + "\" is not a file (PEM expected)");
    target.ca = *ca;
  }
  destination.dicomweb = std::move(target);
}

void read_destinations(json::object_reader& reader, const json::value& destinations,
                       std::map<std::string, destination_config>& out) {
  for (auto& [name, object] : destinations.items()) {
    std::string path = reader.path_of("destinations") + "." + name;
    if (!object.is_object()) {
      reader.sink().add(path, "must be an object with host, port and ae_title");
      continue;
    }
    json::object_reader d{object, path, reader.sink()};
    destination_config destination;
    destination.name = name;
    if (d.has("dicomweb")) {
      read_dicomweb_destination(d, destination);
      read_destination_deidentify(d, destination);
      out[name] = destination;
      continue;
    }
    d.reject_unknown_keys({"host", "port", "ae_title", "calling_ae_title", "associations",
                           "transfer_syntax", "deidentify", "tls"});
    if (auto host = d.get_string("host")) {
      if (auto problem = check_host(*host))
        reader.sink().add(path + ".host", *problem);
      destination.host = *host;
    } else if (!d.has("host"))
      reader.sink().add(path, "needs a \"host\"");
    if (!d.has("port"))
      reader.sink().add(path, "needs a \"port\"");
    read_port(d, "port", destination.port);
    if (!d.has("ae_title"))
      reader.sink().add(path, "needs an \"ae_title\" (the called AE title of the destination)");
    read_ae_title(d, "ae_title", destination.ae_title);
    read_ae_title(d, "calling_ae_title", destination.calling_ae_title);
    if (auto n = d.get_integer("associations", 1, 64))
      destination.associations = static_cast<int>(*n);
    if (auto syntax = d.get_string("transfer_syntax")) {
      if (*syntax != "jpeg-ls" && *syntax != "jpeg-lossless" && *syntax != "explicit-le")
        reader.sink().add(path + ".transfer_syntax",
                          "must be \"jpeg-ls\" (JPEG-LS lossless), \"jpeg-lossless\" or "
                          "\"explicit-le\" (uncompressed), not \"" +
                              *syntax + "\"");
      else
        destination.transfer_syntax = *syntax;
    }
    read_destination_deidentify(d, destination);
    if (auto tls = d.get_object("tls"))
      destination.tls = read_dicom_tls(d, *tls, path + ".tls");
    out[name] = destination;
  }
}

} // namespace

result<node_config> parse_node_config(std::string_view text, const std::string& source) {
  auto root = json::parse(text, source);
  if (!root)
    return root.error();
  if (!root->is_object())
    return failure{ec::invalid_config, source + ": the configuration must be a JSON object"};
  json::problems problems{source, {}};
  json::object_reader reader{*root, "", problems};
  reader.reject_unknown_keys({"ae_title", "dicom", "web", "data_dir", "streams_dir", "routing_file",
                              "completion", "storage", "sending", "destinations", "cluster",
                              "deidentify", "log"});
  node_config config;
  config.source = source;
  read_ae_title(reader, "ae_title", config.ae_title);
  reader.with_object("dicom", [&](json::object_reader& sub) { read_dicom(sub, config.dicom); });
  reader.with_object("web", [&](json::object_reader& sub) { read_web(sub, config.web); });
  if (auto dir = reader.get_string("data_dir"))
    config.data_dir = *dir;
  if (auto dir = reader.get_string("streams_dir"))
    config.streams_dir = *dir;
  if (auto file = reader.get_string("routing_file"))
    config.routing_file = *file;
  reader.with_object("completion",
                     [&](json::object_reader& sub) { read_completion(sub, config.completion); });
  reader.with_object("storage",
                     [&](json::object_reader& sub) { read_storage(sub, config.storage); });
  reader.with_object("sending",
                     [&](json::object_reader& sub) { read_sending(sub, config.sending); });
  if (auto object = reader.get_object("destinations"))
    read_destinations(reader, *object, config.destinations);
  reader.with_object("cluster",
                     [&](json::object_reader& sub) { read_cluster(sub, config.cluster); });
  reader.with_object("deidentify", [&](json::object_reader& sub) {
    sub.reject_unknown_keys({"secret_file", "keep_mapping"});
    if (auto file = sub.get_string("secret_file"))
      config.deidentify_secret_file = *file;
    if (auto keep = sub.get_flag("keep_mapping"))
      config.deidentify_keep_mapping = *keep;
  });
  reader.with_object("log", [&](json::object_reader& sub) {
    sub.reject_unknown_keys({"level"});
    if (auto level = sub.get_string("level")) {
      log::level parsed;
      if (!log::parse_level(*level, parsed))
        problems.add("log.level", "must be \"debug\", \"info\", \"warning\" or \"error\"");
      else
        config.log_level = *level;
    }
  });
  if (!problems.empty())
    return failure{ec::invalid_config, problems.report()};
  return config;
}

result<node_config> load_node_config(const std::filesystem::path& path) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  auto parsed = parse_node_config(*text, path.string());
  if (!parsed)
    return parsed;
  // Folders named in the file are relative to the file, as users expect when
  // they keep one configuration folder per node.
  auto base = path.parent_path();
  auto& tls = parsed->cluster.tls;
  for (auto* dir : {&parsed->data_dir, &parsed->streams_dir, &parsed->routing_file,
                    &parsed->deidentify_secret_file, &tls.certificate, &tls.key, &tls.ca})
    if (!dir->empty() && dir->is_relative() && !base.empty())
      *dir = base / *dir;
  if (auto& listener = parsed->dicom.tls; listener && !base.empty())
    for (auto* file : {&listener->certificate, &listener->key, &listener->ca})
      if (!file->empty() && std::filesystem::path{*file}.is_relative())
        *file = (base / *file).string();
  for (auto [key, file] : {std::pair{"certificate", &tls.certificate}, std::pair{"key", &tls.key},
                           std::pair{"ca", &tls.ca}}) {
    std::error_code error;
    if (!file->empty() && !std::filesystem::is_regular_file(*file, error))
      return failure{ec::invalid_config, path.string() + ": cluster.tls." + key + ": " +
                                             file->string() +
                                             " is not a file (dcmstreams cluster-ca makes them)"};
  }
  return parsed;
}

} // namespace dcmstreams
