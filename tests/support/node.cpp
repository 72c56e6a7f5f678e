#include "tests/support/node.hpp"

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/jobs/database.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>

namespace dcmstreams::fixtures {

namespace fs = std::filesystem;

fs::path dcmstreams_binary() {
  return DCMSTREAMS_BINARY;
}

fs::path source_dir() {
  return DCMSTREAMS_SOURCE_DIR;
}

fs::path pydicom_test_files() {
  return "/usr/lib/python3/dist-packages/pydicom/data/test_files";
}

void write_stream(const fs::path& streams_dir, const std::string& name, const std::string& ae_title,
                  const std::string& extra) {
  std::string json = "{\"name\": \"" + name + "\", \"AETitle\": \"" + ae_title +
                     "\", \"enabled\": 1, \"description\": \"test stream\"";
  json += extra.empty() ? ", \"command\": [\"/bin/true\"]" : ", " + extra;
  json += "}\n";
  write_file(streams_dir / name / "info.json", json);
}

test_node::test_node(const fs::path& root, node_options options)
    : root_(root), data_dir_(root / "data"), streams_dir_(root / "streams"),
      config_file_(root / "dcmstreams.json"), log_file_(root / "node.log"), port_(free_port()),
      web_port_(free_port()) {
  fs::create_directories(streams_dir_);
  char quiet[32];
  std::snprintf(quiet, sizeof quiet, "%g", options.quiet_period_s);
  write_file(config_file_,
             "{\n"
             "  \"data_dir\": \"data\",\n"
             "  \"streams_dir\": \"streams\",\n"
             "  \"dicom\": {\"port\": " +
                 std::to_string(port_) + ", \"bind\": \"127.0.0.1\", " +
                 "\"max_associations\": " + std::to_string(options.max_associations) +
                 ", \"allowed_callers\": " + options.allowed_callers_json + options.dicom_json +
                 "},\n" + "  \"web\": {\"port\": " + std::to_string(web_port_) + options.web_json +
                 "},\n" + "  \"completion\": {\"quiet_period_s\": " + quiet +
                 options.completion_json + "},\n" + "  \"storage\": {\"sync\": \"" + options.sync +
                 "\", \"reserve_free_mb\": " + std::to_string(options.reserve_free_mb) +
                 options.storage_json + "},\n" + "  \"routing_file\": \"routing.json\"" +
                 (options.extra_config.empty() ? "" : ",\n  " + options.extra_config) + "\n}\n");
  if (!options.routing_json.empty())
    write_routing(options.routing_json);
  if (options.test_hooks)
    environment_["DCMSTREAMS_TEST_HOOKS"] = "1";
}

void test_node::write_routing(const std::string& json) {
  // Through a rename, so that the node never reads half a file.
  write_file(root_ / "routing.json.new", json);
  fs::rename(root_ / "routing.json.new", root_ / "routing.json");
}

test_node::~test_node() {
  if (running())
    stop();
}

void test_node::start() {
  process_ = std::make_unique<process>(
      process_options{{dcmstreams_binary().string(), "serve", "--config", config_file_.string()},
                      environment_,
                      root_,
                      log_file_});
  // "ready" is logged once per start; count them to wait for this start's.
  auto before = [&] {
    std::size_t count = 0, at = 0;
    auto text = log();
    while ((at = text.find("serve: ready", at)) != std::string::npos) {
      ++count;
      ++at;
    }
    return count;
  };
  auto initial = before();
  if (!eventually([&] { return before() > initial || !process_->running(); },
                  std::chrono::seconds(30)) ||
      !process_->running())
    throw std::runtime_error("dcmstreams serve did not start:\n" + log());
}

int test_node::stop() {
  return process_ ? process_->stop() : -1;
}

void test_node::kill() {
  if (process_) {
    process_->signal(SIGKILL);
    process_->wait(std::chrono::seconds(10));
  }
}

bool test_node::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) {
  return eventually([&] { return log().find(text) != std::string::npos; }, timeout);
}

std::vector<fs::path> test_node::job_dirs() const {
  std::vector<fs::path> dirs;
  std::error_code error;
  for (auto& entry : fs::directory_iterator(data_dir_ / "jobs", error))
    if (entry.is_directory() && fs::exists(entry.path() / "info.json"))
      dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return std::stoll(a.filename().string()) < std::stoll(b.filename().string());
  });
  return dirs;
}

std::string test_node::job_info(const fs::path& job_dir, const std::string& key) {
  auto doc = json::load_file(job_dir / "info.json");
  if (!doc || !doc->is_object())
    return {};
  auto value = doc->find(key);
  if (value == doc->end() || !value->is_string())
    return {};
  return value->get<std::string>();
}

bool test_node::wait_for_finished_jobs(std::size_t count, std::chrono::milliseconds timeout) {
  return eventually(
      [&] {
        std::size_t finished = 0;
        for (auto& dir : job_dirs()) {
          auto state = job_info(dir, "state");
          if (state == "success" || state == "failed" || state == "cancelled" || state == "skipped")
            ++finished;
        }
        return finished >= count;
      },
      timeout);
}

std::vector<fs::path> test_node::input_files(const fs::path& job_dir) {
  return files_under(job_dir / "INPUT");
}

std::vector<fs::path> test_node::incoming_files() const {
  std::vector<fs::path> files;
  for (auto& file : files_under(data_dir_ / "incoming"))
    if (file.extension() == ".dcm")
      files.push_back(file);
  return files;
}

std::size_t test_node::pending_instances() const {
  auto body = http_get(web_port(), "/api/v1/studies").body;
  const std::string key = "\"instances\":";
  std::size_t total = 0;
  for (auto at = body.find(key); at != std::string::npos; at = body.find(key, at)) {
    at += key.size();
    total += std::stoul(body.substr(at, 20));
  }
  return total;
}

std::vector<fs::path> test_node::partial_files() const {
  std::vector<fs::path> files;
  for (auto& file : files_under(data_dir_ / "incoming" / ".tmp"))
    if (fs::file_size(file) > 0)
      files.push_back(file);
  return files;
}

std::string dataset_bytes(const fs::path& file) {
  auto content = read_file(file);
  if (content.size() < 144 || content.compare(128, 4, "DICM") != 0)
    throw std::runtime_error(file.string() + ": no DICOM preamble");
  // (0002,0000) UL, explicit VR little endian: tag(4) VR(2) length(2) value(4).
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(content[i]); };
  std::uint32_t group_length =
      at(140) | (at(141) << 8) | (at(142) << 16) | (std::uint32_t{at(143)} << 24);
  return content.substr(144 + group_length);
}

std::string sop_instance_uid(const fs::path& file) {
  auto header = read_instance_header(file);
  if (!header)
    throw std::runtime_error(header.error().message);
  return header->sop_instance_uid;
}

void expect_valid_dicom(const std::vector<fs::path>& files) {
  for (auto& file : files) {
    auto checked = run({"dciodvfy", file.string()});
    EXPECT_EQ(checked.output.find("Error"), std::string::npos) << file << "\n" << checked.output;
  }
}

std::string attribute_text(const fs::path& file, const std::string& keyword) {
  DcmTag tag;
  if (DcmTag::findTagFromName(keyword.c_str(), tag).bad()) {
    ADD_FAILURE() << keyword << " is no attribute keyword DCMTK knows";
    return "";
  }
  DcmFileFormat dicom;
  if (dicom.loadFile(file.c_str()).bad()) {
    ADD_FAILURE() << file << ": DCMTK cannot read it";
    return "";
  }
  OFString value;
  dicom.getDataset()->findAndGetOFStringArray(tag, value);
  return value.c_str();
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error))
    if (it->is_regular_file())
      files.push_back(it->path());
  std::sort(files.begin(), files.end());
  return files;
}

fs::path synth_study(const fs::path& out, int instances, int rows, int series,
                     const std::vector<std::string>& options) {
  std::vector<std::string> argv{dcmstreams_binary().string(),
                                "synth",
                                "--out",
                                out.string(),
                                "--series",
                                std::to_string(series),
                                "--instances",
                                std::to_string(instances),
                                "--rows",
                                std::to_string(rows),
                                "--cols",
                                std::to_string(rows)};
  argv.insert(argv.end(), options.begin(), options.end());
  auto made = run(argv);
  EXPECT_EQ(made.exit_code, 0) << made.output;
  return out;
}

void send_synthetic_study(const test_node& node, const fs::path& dir, const std::string& called_ae,
                          int instances, int rows) {
  synth_study(dir, instances, rows);
  ASSERT_FALSE(::testing::Test::HasFailure());
  auto sent = run({"storescu", "-aec", called_ae, "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), dir.string()},
                  std::chrono::seconds(60), {{"TCP_NODELAY", "1"}});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
}

std::vector<send_task> sends_of(const test_node& node) {
  auto db = database::open(node.data_dir() / "dcmstreams.db", false);
  EXPECT_TRUE(db);
  auto tasks = (*db)->recent_sends(100);
  return tasks ? *tasks : std::vector<send_task>{};
}

bool all_sends(const test_node& node, std::size_t count, const std::string& state,
               std::chrono::milliseconds timeout) {
  return eventually(
      [&] {
        auto tasks = sends_of(node);
        return tasks.size() == count &&
               std::all_of(tasks.begin(), tasks.end(),
                           [&](const send_task& t) { return to_string(t.state) == state; });
      },
      timeout);
}

} // namespace dcmstreams::fixtures
