#include "tests/support/peers.hpp"

#include "tests/support/node.hpp"

#include "pipeline/foundation/json.hpp"

#include <stdexcept>

namespace dcmstreams::fixtures {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

storescp_peer::storescp_peer(const fs::path& root, std::vector<std::string> extra,
                             std::uint16_t port)
    : dir_(root / ("storescp-" + std::to_string(port ? port : free_port()))),
      port_(port ? port : free_port()) {
  fs::create_directories(dir_);
  std::vector<std::string> argv{"storescp"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"-od", dir_.string(), std::to_string(port_)});
  process_ = std::make_unique<process>(
      process_options{argv, {{"TCP_NODELAY", "1"}}, {}, dir_.string() + ".log"});
  bool up = eventually(
      [&] {
        return run({"echoscu", "127.0.0.1", std::to_string(port_)}, 10s).exit_code == 0;
      },
      15s);
  if (!up)
    throw std::runtime_error("storescp did not start: " + process_->output());
}

storescp_peer::~storescp_peer() {
  stop();
}

void storescp_peer::stop() {
  if (process_)
    process_->stop(2s);
}

std::vector<fs::path> storescp_peer::files() const {
  return files_under(dir_);
}

orthanc_peer::orthanc_peer(const fs::path& root, const std::string& aet)
    : dicom_port_(free_port()), http_port_(free_port()) {
  auto dir = root / "orthanc";
  fs::create_directories(dir / "storage");
  write_file(dir / "orthanc.json",
             "{\"Name\": \"dcmstreams-test\", \"StorageDirectory\": \"" +
                 (dir / "storage").string() + "\", \"IndexDirectory\": \"" +
                 (dir / "storage").string() + "\", \"HttpPort\": " + std::to_string(http_port_) +
                 ", \"DicomPort\": " + std::to_string(dicom_port_) + ", \"DicomAet\": \"" + aet +
                 "\", \"RemoteAccessAllowed\": false, \"AuthenticationEnabled\": false, "
                 "\"DicomCheckCalledAet\": true, \"DicomAlwaysAllowStore\": true, "
                 "\"DicomThreadsCount\": 4, \"SaveJobs\": false, \"Plugins\": []}\n");
  process_ = std::make_unique<process>(process_options{
      {"Orthanc", (dir / "orthanc.json").string()}, {{"TCP_NODELAY", "1"}}, {}, dir / "log"});
  bool up =
      eventually([&] { return get("/system").find("\"Version\"") != std::string::npos; }, 30s);
  if (!up)
    throw std::runtime_error("Orthanc did not start: " + process_->output());
}

orthanc_peer::~orthanc_peer() {
  if (process_)
    process_->stop(10s);
}

std::string orthanc_peer::get(const std::string& path) const {
  return run({"curl", "-s", "--max-time", "10",
              "http://127.0.0.1:" + std::to_string(http_port_) + path},
             20s)
      .output;
}

std::vector<std::string> orthanc_peer::instances() const {
  std::vector<std::string> ids;
  auto doc = json::parse(get("/instances"), "orthanc /instances");
  if (!doc || !doc->is_array())
    return ids;
  for (auto& element : *doc)
    if (element.is_string())
      ids.push_back(element.get<std::string>());
  return ids;
}

std::map<std::string, std::string> orthanc_peer::tags(const std::string& instance) const {
  std::map<std::string, std::string> tags;
  auto doc = json::parse(get("/instances/" + instance + "/simplified-tags"), "tags");
  if (!doc || !doc->is_object())
    return tags;
  for (auto& [key, value] : doc->items())
    if (value.is_string())
      tags[key] = value.get<std::string>();
  return tags;
}

} // namespace dcmstreams::fixtures
