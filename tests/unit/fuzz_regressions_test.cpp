// Every seed and every input a fuzz target once failed on (tests/fuzz/seeds/)
// goes through the same target body in the ordinary build: what libFuzzer
// found stays found.

#include "tests/fuzz/fuzz_targets.hpp"
#include "tests/support/node.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <iterator>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

} // namespace

TEST(fuzz_regressions, every_seed_and_every_input_that_once_failed_passes_its_target) {
  auto seeds = fixtures::source_dir() / "tests" / "fuzz" / "seeds";
  std::size_t replayed = 0;
  for (auto& folder : fs::directory_iterator(seeds)) {
    auto target = fuzz::find_target(folder.path().filename().string());
    ASSERT_TRUE(target) << folder.path() << " names no fuzz target";
    for (auto& file : fs::directory_iterator(folder.path())) {
      auto bytes = read_bytes(file.path());
      SCOPED_TRACE(file.path().string());
      EXPECT_EQ(target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), 0);
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 10u);
}

TEST(fuzz_regressions, a_data_set_that_claims_a_4_gb_element_costs_no_memory) {
  // 162 bytes whose element length says 4 GB: DCMTK allocates that before it
  // reads, never touches it, and frees it when the value is not there.
  auto bytes = read_bytes(fixtures::source_dir() / "tests" / "fuzz" / "seeds" / "dataset" /
                          "huge_declared_length");
  ASSERT_EQ(bytes.size(), 162u);
  auto before = peak_rss_kb();
  for (int i = 0; i < 20; ++i)
    fuzz::dataset(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  EXPECT_LT(peak_rss_kb() - before, 64 * 1024) << "peak RSS grew by more than 64 MiB";
}
