#include "tests/support/peers.hpp"

#include "tests/support/node.hpp"

#include "pipeline/foundation/json.hpp"

#include <stdexcept>

namespace dcmstreams::fixtures {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

test_authority::test_authority(const fs::path& dir)
    : dir_(dir), certificate_(dir / "ca.pem"), key_(dir / "ca.key") {
  fs::create_directories(dir);
  auto made = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                   key_.string(), "-out", certificate_.string(), "-days", "2", "-subj",
                   "/CN=dcmstreams test authority " + dir.filename().string()});
  if (made.exit_code != 0)
    throw std::runtime_error("openssl could not make a test authority: " + made.output);
}

test_authority::issued test_authority::issue(const std::string& name,
                                             const std::string& subject_alt_name) const {
  issued out{dir_ / (name + ".pem"), dir_ / (name + ".key")};
  auto request = dir_ / (name + ".csr"), extensions = dir_ / (name + ".ext");
  write_file(extensions, "subjectAltName=" + subject_alt_name + "\n");
  for (auto& argv : std::vector<std::vector<std::string>>{
           {"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", out.key.string(), "-out",
            request.string(), "-subj", "/CN=" + name},
           {"openssl", "x509", "-req", "-in", request.string(), "-CA", certificate_.string(),
            "-CAkey", key_.string(), "-CAcreateserial", "-out", out.certificate.string(), "-days",
            "2", "-extfile", extensions.string()}}) {
    auto made = run(argv);
    if (made.exit_code != 0)
      throw std::runtime_error("openssl could not issue " + name + ": " + made.output);
  }
  return out;
}

storescp_peer::storescp_peer(const fs::path& root, std::vector<std::string> extra,
                             std::uint16_t port, std::vector<std::string> echo_extra)
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
        std::vector<std::string> echo{"echoscu"};
        echo.insert(echo.end(), echo_extra.begin(), echo_extra.end());
        echo.insert(echo.end(), {"127.0.0.1", std::to_string(port_)});
        return run(echo, 10s).exit_code == 0;
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

orthanc_peer::orthanc_peer(const fs::path& root, const std::string& aet,
                           const std::string& dicomweb_servers, const std::string& more_config,
                           const std::string& user)
    : dicom_port_(free_port()), http_port_(free_port()), user_(user) {
  auto colon = user.find(':');
  std::string authentication =
      user.empty() ? "\"AuthenticationEnabled\": false"
                   : "\"AuthenticationEnabled\": true, \"RegisteredUsers\": {\"" +
                         user.substr(0, colon) + "\": \"" + user.substr(colon + 1) + "\"}";
  std::string plugins =
      dicomweb_servers.empty()
          ? "\"Plugins\": []"
          : "\"Plugins\": [\"/usr/share/orthanc/plugins/libOrthancDicomWeb.so\"], "
            "\"DicomWeb\": {\"Enable\": true, \"Servers\": " +
                dicomweb_servers + "}";
  auto dir = root / "orthanc";
  fs::create_directories(dir / "storage");
  write_file(dir / "orthanc.json",
             "{\"Name\": \"dcmstreams-test\", \"StorageDirectory\": \"" +
                 (dir / "storage").string() + "\", \"IndexDirectory\": \"" +
                 (dir / "storage").string() + "\", \"HttpPort\": " + std::to_string(http_port_) +
                 ", \"DicomPort\": " + std::to_string(dicom_port_) + ", \"DicomAet\": \"" + aet +
                 "\", \"RemoteAccessAllowed\": false, " + authentication +
                 ", \"DicomCheckCalledAet\": true, \"DicomAlwaysAllowStore\": true, "
                 "\"DicomThreadsCount\": 4, \"SaveJobs\": false, " +
                 plugins + more_config + "}\n");
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

std::vector<std::string> orthanc_peer::curl(std::vector<std::string> arguments) const {
  std::vector<std::string> argv{"curl", "-s", "--max-time", "60"};
  if (!user_.empty())
    argv.insert(argv.end(), {"-u", user_});
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return argv;
}

std::string orthanc_peer::get(const std::string& path) const {
  return run(curl({"http://127.0.0.1:" + std::to_string(http_port_) + path}), 70s).output;
}

std::string orthanc_peer::post(const std::string& path, const std::string& json) const {
  return run(curl({"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", json,
                   "http://127.0.0.1:" + std::to_string(http_port_) + path}),
             70s)
      .output;
}

std::string orthanc_peer::upload(const fs::path& file) const {
  return run(curl({"-X", "POST", "--data-binary", "@" + file.string(),
                   "http://127.0.0.1:" + std::to_string(http_port_) + "/instances"}),
             70s)
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
