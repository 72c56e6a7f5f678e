#include "main/node_config_loader.hpp"

#include "web/auth.hpp"

#include <filesystem>

namespace dcmstreams::cli {

std::vector<option_spec> config_options() {
  return {
      {"config", "FILE", "node configuration (default: ./dcmstreams.json if it exists)"},
      {"streams", "DIR", "streams folder (default: streams/library)"},
      {"routing", "FILE", "routing file (default: routing.json)"},
  };
}

std::vector<option_spec> override_options() {
  return {
      {"data", "DIR", "data folder for the store, jobs and database (default: ./data)"},
      {"dicom-port", "N", "DICOM port (default: 11113)"},
      {"web-port", "N", "web port (default: 2813)"},
      {"web-bind", "ADDR", "web address (default: 127.0.0.1)"},
      {"ae-title", "AET", "the node's own AE title (default: DCMSTREAMS)"},
  };
}

result<node_config> load_config(const command_line& args) {
  node_config config;
  if (auto file = args.value("config")) {
    auto loaded = load_node_config(*file);
    if (!loaded)
      return loaded.error();
    config = *loaded;
  } else if (std::filesystem::exists("dcmstreams.json")) {
    auto loaded = load_node_config("dcmstreams.json");
    if (!loaded)
      return loaded.error();
    config = *loaded;
  }
  if (auto dir = args.value("streams"))
    config.streams_dir = *dir;
  if (auto file = args.value("routing")) {
    config.routing_file = *file;
    config.routing_file_named = true;
  }
  if (auto dir = args.value("data"))
    config.data_dir = *dir;
  auto port = args.integer("dicom-port", config.dicom.port, 1, 65535);
  if (!port)
    return port.error();
  config.dicom.port = static_cast<std::uint16_t>(*port);
  auto web_port = args.integer("web-port", config.web.port, 1, 65535);
  if (!web_port)
    return web_port.error();
  config.web.port = static_cast<std::uint16_t>(*web_port);
  if (auto bind = args.value("web-bind"))
    config.web.bind = *bind;
  if (auto title = args.value("ae-title")) {
    if (auto problem = check_ae_title(*title))
      return failure{ec::invalid_argument, args.error("--ae-title: " + *problem)};
    config.ae_title = *title;
  }
  // Absolute from here on: jobs run in their own folders and get these paths.
  for (auto* dir : {&config.data_dir, &config.streams_dir, &config.routing_file})
    *dir = std::filesystem::absolute(*dir).lexically_normal();
  return config;
}

std::vector<std::string> serve_refusals(const node_config& config) {
  std::vector<std::string> refusals;
  // A node reachable from other machines must not let anyone change it.
  if (!web::is_loopback(config.web.bind) && config.web.users.empty())
    refusals.push_back("web.bind is " + config.web.bind +
                       ", reachable from other machines, but web.users is empty: add users with "
                       "roles (password hashes from `dcmstreams passwd`) or bind to 127.0.0.1");
  std::error_code error;
  if (std::filesystem::exists(config.data_dir, error) &&
      !std::filesystem::is_directory(config.data_dir, error))
    refusals.push_back("data_dir " + config.data_dir.string() +
                       " is a file, not a folder: point data_dir (or --data) at a folder");
  // Said before anything starts, in check's words too; whether OpenSSL takes
  // the files is said when the TLS listener starts.
  if (auto& tls = config.dicom.tls)
    for (auto [key, file] : {std::pair{"certificate", &tls->certificate},
                             std::pair{"key", &tls->key}, std::pair{"ca", &tls->ca}})
      if (!file->empty() && !std::filesystem::is_regular_file(*file, error))
        refusals.push_back(std::string("dicom.tls.") + key + ": " + *file +
                           " is not a file (PEM expected)");
  return refusals;
}

} // namespace dcmstreams::cli
