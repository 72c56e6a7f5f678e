#pragma once
// A real `dcmstreams serve` process for integration tests, with its own
// configuration, streams folder and data folder on a free loopback port.

#include "pipeline/jobs/send.hpp"
#include "tests/support/process.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace dcmstreams::fixtures {

/// The dcmstreams binary under test.
std::filesystem::path dcmstreams_binary();
/// The checkout (for streams/library and other fixtures).
std::filesystem::path source_dir();
/// python3-pydicom's test files.
std::filesystem::path pydicom_test_files();

/// Writes <streams_dir>/<name>/info.json; `extra` is inserted as more JSON members.
void write_stream(const std::filesystem::path& streams_dir, const std::string& name,
                  const std::string& ae_title, const std::string& extra = "");

struct node_options {
  double quiet_period_s = 0.5;
  std::string sync = "instance";
  std::uint64_t reserve_free_mb = 1;
  int max_associations = 16;
  std::string allowed_callers_json = "[]";
  std::string routing_json;    // written to <root>/routing.json when set
  std::string extra_config;    // more members of dcmstreams.json: "\"sending\": {...}"
  std::string web_json;        // more members of "web": ", \"users\": [...]"
  std::string storage_json;    // more members of "storage": ", \"retention_days\": 1"
  std::string dicom_json;      // more members of "dicom": ", \"watchdog_interval_s\": 1"
  std::string completion_json; // more members of "completion": ", \"max_backlog\": 10"
  bool test_hooks = false;     // DCMSTREAMS_TEST_HOOKS=1: /api/v1/test/... fault injection
};

class test_node {
public:
  test_node(const std::filesystem::path& root, node_options options = {});
  ~test_node();

  /// Replaces routing.json (the node picks it up within a second).
  void write_routing(const std::string& json);
  const std::filesystem::path& root() const { return root_; }
  /// Starts `serve` and waits until it says it is ready.
  void start();
  /// SIGTERM, and the exit code.
  int stop();
  /// SIGKILL, as a crash would.
  void kill();
  bool running() { return process_ && process_->running(); }
  /// The process id of the running node (for /proc readings).
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  std::uint16_t port() const { return port_; }
  /// The HTTP port (web UI and API) on 127.0.0.1.
  std::uint16_t web_port() const { return web_port_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  const std::filesystem::path& streams_dir() const { return streams_dir_; }
  std::string log() const { return read_file(log_file_); }
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout);

  /// Job folders under data/jobs whose info.json is written (complete), by id.
  std::vector<std::filesystem::path> job_dirs() const;
  /// The value of a top-level string key of a job's info.json ("state", "message"...).
  static std::string job_info(const std::filesystem::path& job_dir, const std::string& key);
  /// Waits until `count` jobs have finished (success, failed, cancelled or skipped).
  bool wait_for_finished_jobs(std::size_t count, std::chrono::milliseconds timeout);
  /// Files in a job's INPUT folder.
  static std::vector<std::filesystem::path> input_files(const std::filesystem::path& job_dir);
  /// Instance files under data/incoming: data sets too large for the journal,
  /// uploads, and a completing study's instances on their way to its job.
  std::vector<std::filesystem::path> incoming_files() const;
  /// Instances of pending studies, as GET /api/v1/studies lists them (0 if
  /// the node does not answer).
  std::size_t pending_instances() const;
  /// Files being received or left from a reception (the listener's ready,
  /// empty files do not count).
  std::vector<std::filesystem::path> partial_files() const;

private:
  std::filesystem::path root_;
  std::filesystem::path data_dir_;
  std::filesystem::path streams_dir_;
  std::filesystem::path config_file_;
  std::filesystem::path log_file_;
  std::uint16_t port_;
  std::uint16_t web_port_;
  std::map<std::string, std::string> environment_{{"TCP_NODELAY", "1"}};
  std::unique_ptr<process> process_;
};

/// The node's sends, newest first, as its database holds them.
std::vector<send_task> sends_of(const test_node& node);
/// Waits until the node has `count` sends, every one in `state` ("done",
/// "failed", ...).
bool all_sends(const test_node& node, std::size_t count, const std::string& state,
               std::chrono::milliseconds timeout);

/// Writes one synthetic study with `dcmstreams synth` into `out` (more
/// options such as {"--modality", "MR"}); fails the test if synth fails.
std::filesystem::path synth_study(const std::filesystem::path& out, int instances, int rows,
                                  int series = 1, const std::vector<std::string>& options = {});

/// Makes a one-series study with `dcmstreams synth` in `dir` and sends it to
/// `called_ae` of `node` with storescu; fails the test if either fails.
void send_synthetic_study(const test_node& node, const std::filesystem::path& dir,
                          const std::string& called_ae, int instances = 2, int rows = 16);

/// The data set bytes of a DICOM file: everything after its file meta
/// information (found through (0002,0000) File Meta Information Group Length).
std::string dataset_bytes(const std::filesystem::path& file);
/// The SOP Instance UID of a file (read with DCMTK).
std::string sop_instance_uid(const std::filesystem::path& file);
/// Fails the test, naming the file and dciodvfy's report, for every file
/// in which dicom3tools' dciodvfy finds an error.
void expect_valid_dicom(const std::vector<std::filesystem::path>& files);
/// An attribute of a file's data set by its keyword ("PatientID"), as text;
/// empty when absent. Fails the test when the file cannot be read.
std::string attribute_text(const std::filesystem::path& file, const std::string& keyword);
/// Regular files under `dir`, recursively, sorted.
std::vector<std::filesystem::path> files_under(const std::filesystem::path& dir);

} // namespace dcmstreams::fixtures
