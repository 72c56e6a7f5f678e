#pragma once
// The built-in image kernels a stream's `pipeline` chains. Each runs in
// parallel with oneTBB (over slices or lines); tests compare each with a
// straightforward reference on small volumes.

#include "pipeline/foundation/error.hpp"
#include "pipeline/foundation/json.hpp"
#include "pipeline/imaging/volume.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams {

/// One step of a pipeline, its parameters checked.
struct kernel_step {
  std::string kernel;
  // gaussian; `recursive`: wide kernels (sigma of 3 voxels or more along an
  // axis) by the recursive filter, at a cost that does not grow with sigma
  double sigma_mm = 1.0;
  bool recursive = false;
  // threshold: keep [lower, upper]; mask sets the rest to `background`
  // (default: the lowest value in the volume), binarize writes 1 and 0
  std::optional<double> lower;
  std::optional<double> upper;
  std::string mode = "mask";
  std::optional<double> background;
  // window: linear VOI (PS3.3 C.11.2.1.2) to 8 bits
  double center = 40;
  double width = 400;
  // mip: slab thickness in mm; 0 = the whole volume
  double slab_mm = 0;
  // resample: to this spacing (mm, every axis) or by this factor (2 = twice the voxels)
  std::optional<double> spacing_mm;
  std::optional<double> factor;
  // stats
  double threshold = 0;
  int bins = 64;
  // deidentify: move dates back by the patient's own days instead of removing them
  bool shift_dates = false;

  /// "gaussian sigma 1 mm", for logs and DerivationDescription.
  std::string describe() const;
  /// Whether the step changes the image (stats and deidentify do not).
  bool makes_image() const;
};

/// Parses one step object; problems name `where` and the key:
/// `pipeline[1].sigma_mm: must be a number above 0`.
result<kernel_step> parse_kernel_step(std::string_view json, const std::string& where);
/// The same, for a step already parsed (a stream's pipeline).
result<kernel_step> read_kernel_step(const json::value& step, const std::string& where);

/// The kernel names a pipeline may use.
const std::vector<std::string>& kernel_names();

/// Steps that change each voxel by its value alone (threshold, window), run
/// on blocks of voxels while those are in cache: inside the output loop of
/// the neighbourhood kernel before them, or several in one pass, so that a
/// chain of them costs no extra pass over memory.
class voxel_pass {
public:
  /// Whether the step can run on blocks: window; threshold binarizing or
  /// with a `background` (masking's default background is the lowest value
  /// of the whole volume, which takes a pass of its own).
  static bool can_fuse(const kernel_step& step);
  /// The steps, each of which can_fuse, in order, after a volume with
  /// `before`'s slope, intercept and bits.
  voxel_pass(const volume& before, const std::vector<kernel_step>& steps);
  /// One more step; a threshold's `background` in stored values if given.
  void add(const kernel_step& step, std::optional<std::int16_t> background);
  bool empty() const { return steps_.empty(); }
  /// Runs every step on n voxels in place.
  void apply(std::int16_t* voxels, std::size_t n) const;
  /// Gives the volume the slope, intercept and bits the steps leave.
  void finish(volume& v) const;

private:
  struct voxel_step {
    bool window = false;
    // threshold, in stored values
    std::int16_t low = 0, high = 0, outside = 0;
    bool binarize = false, empty = false;
    // window: whole-number parameters, or else a table of every stored value
    int slope = 1, offset = 0, width = 2, bias = 0;
    float reciprocal = 1;
    std::shared_ptr<const std::vector<std::int16_t>> table;
  };
  std::vector<voxel_step> steps_;
  double slope_ = 1, intercept_ = 0;
  int bits_stored_ = 16;
  bool is_signed_ = true;
};

/// How the Gaussian is computed along an axis whose sigma is 3 voxels or
/// more. `exact`: the kernel truncated at 3 sigma, as along every other axis
/// (within 1 of a double-precision convolution; the cost grows with sigma).
/// `recursive`: Young and van Vliet's third-order recursive filter, whose
/// cost does not grow with sigma, within about 2 % of an edge's height along
/// one axis and 4 % in 3-D of the exact Gaussian (its response is not quite
/// a Gaussian's).
enum class gaussian_method { exact, recursive };

/// `then`, when given, runs on each block of the result as it is written.
volume gaussian(const volume& in, double sigma_mm, const voxel_pass* then = nullptr,
                gaussian_method method = gaussian_method::exact);
volume median3(const volume& in, const voxel_pass* then = nullptr);
/// Runs the pass over the whole volume in place (an rvalue avoids a copy).
volume run_voxel_pass(volume in, const voxel_pass& pass);
/// threshold and window change voxels in place: pass an rvalue to avoid a copy.
volume threshold(volume in, const kernel_step& step);
volume window(volume in, double center, double width);
volume mip(const volume& in, double slab_mm);
volume resample(const volume& in, const kernel_step& step);

struct volume_statistics {
  std::size_t voxels = 0;
  double mean = 0, std_dev = 0, min = 0, max = 0;
  double threshold = 0;
  std::size_t voxels_above = 0;
  double volume_above_ml = 0;
  std::vector<double> bin_edges;       // bins + 1 edges from min to max
  std::vector<std::size_t> bin_counts; // bins
};
volume_statistics statistics(const volume& in, double threshold, int bins);

} // namespace dcmstreams
