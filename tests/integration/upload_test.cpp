// Uploads over HTTP (ZIP of DICOM files to /api/v1/upload and the old
// processZip.php): large archives stream to disk with flat memory, every
// entry is checked against the disk's reserve by its own size, and an upload
// that does not fit answers 507 and leaves nothing behind.

#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <fstream>

using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Python's zipfile (stored, or deflated so that zeros shrink a thousandfold):
// each entry is "name=path" (a file) or "name=zeros:N" (N zero bytes).
fs::path make_zip(const fs::path& zip, const std::vector<std::string>& entries, bool deflate) {
  std::string script = "import sys, zipfile\n"
                       "mode = zipfile.ZIP_DEFLATED if sys.argv[2] == '1' else zipfile.ZIP_STORED\n"
                       "with zipfile.ZipFile(sys.argv[1], 'w', mode) as z:\n"
                       "  for spec in sys.argv[3:]:\n"
                       "    name, what = spec.split('=', 1)\n"
                       "    if what.startswith('zeros:'):\n"
                       "      with z.open(name, 'w', force_zip64=True) as out:\n"
                       "        left = int(what[6:])\n"
                       "        while left > 0:\n"
                       "          n = min(left, 1 << 20); out.write(bytes(n)); left -= n\n"
                       "    else:\n"
                       "      z.write(what, name)\n";
  std::vector<std::string> argv{"python3", "-c", script, zip.string(), deflate ? "1" : "0"};
  argv.insert(argv.end(), entries.begin(), entries.end());
  auto made = run(argv);
  EXPECT_EQ(made.exit_code, 0) << made.output;
  return zip;
}

// The highest resident memory the process has had, in MiB (/proc VmHWM).
long peak_rss_mib(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stol(line.substr(6)) / 1024;
  return -1;
}

http_reply upload(const test_node& node, const fs::path& zip, const std::string& ae) {
  return http_request(node.web_port(), "POST", "/api/v1/upload?ae=" + ae, read_file(zip),
                      {{"Content-Type", "application/zip"}});
}

} // namespace

TEST(upload, a_large_archive_is_taken_and_memory_stays_flat) {
  temp_dir root, scratch;
  node_options options;
  options.quiet_period_s = 0.3;
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE",
               R"("command": ["/bin/sh", "-c", "cp -r \"$0\"/. \"$1\""])");
  node.start();

  // 40 instances of 512 KB: 20 MB, well over the 1 MiB of ordinary requests.
  auto study = synth_study(scratch / "study", 40, 512);
  std::vector<std::string> entries;
  for (auto& file : files_under(study))
    entries.push_back("study/" + file.filename().string() + "=" + file.string());
  auto big = make_zip(scratch / "big.zip", entries, false);
  ASSERT_GT(fs::file_size(big), 20u << 20);
  auto reply = upload(node, big, "COPYAE");
  ASSERT_EQ(reply.status, 202) << reply.body;
  EXPECT_TRUE(contains(reply.body, "\"instances\":40")) << reply.body;
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();
  EXPECT_EQ(test_node::input_files(node.job_dirs().at(0)).size(), 40u);

  // A 1 MB archive holding a 512 MiB entry (not DICOM: skipped) beside one
  // instance: the entry is streamed through, never held in memory.
  auto bomb = make_zip(scratch / "bomb.zip",
                       {"zeros.bin=zeros:" + std::to_string(512u << 20),
                        "one.dcm=" + files_under(study).front().string()},
                       true);
  ASSERT_LT(fs::file_size(bomb), 2u << 20);
  auto before = peak_rss_mib(node.pid());
  reply = upload(node, bomb, "COPYAE");
  ASSERT_EQ(reply.status, 202) << reply.body;
  EXPECT_TRUE(contains(reply.body, "zeros.bin: not a DICOM file")) << reply.body;
  auto after = peak_rss_mib(node.pid());
  EXPECT_LT(after - before, 64) << "peak memory rose from " << before << " to " << after << " MiB";
  EXPECT_TRUE(node.partial_files().empty());
}

TEST(upload, an_archive_that_does_not_fit_above_the_reserve_gets_507_and_leaves_nothing) {
  temp_dir root, scratch;
  small_disk disk{root / "data", 48};
  if (!disk.mounted())
    GTEST_SKIP() << "mounting a tmpfs needs root (CAP_SYS_ADMIN); CI runs as root";
  node_options options;
  options.reserve_free_mb = 8;
  options.storage_json = R"(, "journal_segment_mb": 1)";
  test_node node{root.path(), options};
  write_stream(node.streams_dir(), "copy", "COPYAE");
  node.start();
  auto study = synth_study(scratch / "study", 2, 64);
  auto files = files_under(study);
  // A few kilobytes of ZIP: one instance that fits, then 2 × 30 MB that do not.
  auto zip = make_zip(scratch / "too-big.zip",
                      {"a.dcm=" + files[0].string(), "b.bin=zeros:" + std::to_string(30u << 20),
                       "c.bin=zeros:" + std::to_string(30u << 20), "d.dcm=" + files[1].string()},
                      true);
  ASSERT_LT(fs::file_size(zip), 1u << 20);
  auto reply = upload(node, zip, "COPYAE");
  EXPECT_EQ(reply.status, 507) << reply.body;
  EXPECT_TRUE(contains(reply.body, "does not fit on the data disk")) << reply.body;
  EXPECT_TRUE(node.incoming_files().empty()) << "a refused upload keeps no instance";
  EXPECT_TRUE(node.partial_files().empty()) << "nor any part of a file";
  EXPECT_TRUE(node.job_dirs().empty());
  // The node goes on: a small upload fits.
  auto small = make_zip(scratch / "small.zip", {"a.dcm=" + files[0].string()}, false);
  EXPECT_EQ(upload(node, small, "COPYAE").status, 202);
}
