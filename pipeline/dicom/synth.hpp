#pragma once
// Synthetic studies for tests and benchmarks: a CT or MR phantom with correct
// patient geometry, fresh UIDs on every run, valid for dciodvfy.

#include "pipeline/foundation/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dcmstreams {

struct synth_options {
  std::filesystem::path out;
  int studies = 1;
  int series = 2;
  int instances = 20; // slices per series
  int rows = 256;
  int cols = 256;
  std::string modality = "CT"; // CT or MR
  /// explicit-le (default), implicit-le, deflated, jpeg-lossless, jpeg-ls, rle
  std::string transfer_syntax = "explicit-le";
  double slice_spacing_mm = 0; // 0: 2.5 mm for CT, 5 mm for MR
  double field_of_view_mm = 350;
};

struct synth_result {
  std::vector<std::string> study_uids;
  std::vector<std::filesystem::path> files;
  std::uint64_t bytes = 0;
};

/// The transfer syntax names synth accepts, for --help and error messages.
std::string synth_transfer_syntax_names();

/// Checks the options; the failure names the option and its allowed range.
status check_synth_options(const synth_options& options);

/// Writes <out>/study<N>/series<M>/<slice>.dcm for every study and series.
result<synth_result> synthesize(const synth_options& options);

} // namespace dcmstreams
