#pragma once
// A series as a 3-D volume in patient space, for the built-in kernels.
//
// Voxels are int16 in the series' stored units; value = stored * slope +
// intercept (so CT keeps Hounsfield units exactly). x runs along a row
// (ImageOrientationPatient's first vector), y down the columns, z along the
// slice normal in the order of increasing position.

#include "pipeline/foundation/error.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

using vec3 = std::array<double, 3>;

void* allocate_voxel_bytes(std::size_t bytes);
void free_voxel_bytes(void* p, std::size_t bytes) noexcept;

/// Where voxels live: buffers of 2 MiB and more are aligned to 2 MiB and ask
/// for transparent huge pages (madvise), so that a 150 MB volume is touched
/// in 75 page faults instead of 38,000; on a virtual machine each fault costs
/// microseconds, and a kernel's fresh output spent more time faulting than
/// computing. Smaller ones come from operator new.
template <class T> struct voxel_allocator {
  using value_type = T;
  voxel_allocator() = default;
  template <class U> voxel_allocator(const voxel_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_voxel_bytes(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { free_voxel_bytes(p, n * sizeof(T)); }
  template <class U> bool operator==(const voxel_allocator<U>&) const noexcept { return true; }
  template <class U> bool operator!=(const voxel_allocator<U>&) const noexcept { return false; }
};
using voxel_vector = std::vector<std::int16_t, voxel_allocator<std::int16_t>>;

struct volume {
  std::size_t nx = 0, ny = 0, nz = 0;
  voxel_vector voxels; // x fastest, then y, then z
  double slope = 1;
  double intercept = 0;
  vec3 spacing{1, 1, 1};          // mm between voxel centres along x, y, z
  vec3 origin{0, 0, 0};           // patient position of voxel (0, 0, 0)
  vec3 row_direction{1, 0, 0};    // direction of increasing x
  vec3 column_direction{0, 1, 0}; // direction of increasing y
  vec3 slice_direction{0, 0, 1};  // direction of increasing z
  double slice_thickness = 0;     // mm
  int bits_stored = 16;           // 8 after `window`
  bool is_signed = true;

  std::size_t size() const { return nx * ny * nz; }
  std::int16_t& at(std::size_t x, std::size_t y, std::size_t z) {
    return voxels[(z * ny + y) * nx + x];
  }
  std::int16_t at(std::size_t x, std::size_t y, std::size_t z) const {
    return voxels[(z * ny + y) * nx + x];
  }
  double value(std::int16_t stored) const { return stored * slope + intercept; }
  /// The stored value for a real value, rounded and clamped to int16.
  std::int16_t stored(double value) const;
  /// Patient position of the centre of voxel (x, y, z).
  vec3 position(double x, double y, double z) const;
};

/// One image series of a job, loaded and sorted.
struct series_volume {
  std::string series_uid;
  std::string modality;
  std::string sop_class_uid;
  std::vector<std::filesystem::path> files;   // in z order
  std::vector<std::string> sop_instance_uids; // in z order
  volume image;
};

/// A window the data names (WindowCenter, WindowWidth and its explanation).
struct named_window {
  std::string name;
  double center = 0;
  double width = 0;
};

/// One image file as the volume loader reads it: where it lies in the
/// patient and, when asked for, its decoded stored values.
struct image_slice {
  std::filesystem::path file;
  std::string sop_uid;
  std::string series_uid;
  std::string modality;
  std::string sop_class_uid;
  std::string series_description;
  std::optional<vec3> position;
  std::optional<std::array<double, 6>> orientation;
  vec3 pixel_spacing{1, 1, 0}; // row spacing (y), column spacing (x)
  double thickness = 0;
  long instance_number = 0;
  unsigned rows = 0, cols = 0;
  double slope = 1, intercept = 0;
  bool is_signed = false;
  bool inverted = false;             // MONOCHROME1: high values are dark
  std::vector<named_window> windows; // as the file names them
  std::vector<std::int32_t> raw;     // decoded stored values, rows * cols
};

/// Reads one image file; `nullopt` with `why` set when it is not an image a
/// volume is made of (no pixel data, colour, several frames). Without
/// `with_pixels` only the header is read: `raw` stays empty, but whether the
/// pixel data could be decoded is still checked.
result<std::optional<image_slice>> read_image_slice(const std::filesystem::path& path,
                                                    std::string& why, bool with_pixels = true);

/// Puts one series' slices in volume order: along the slice normal by
/// ImagePositionPatient, by InstanceNumber where a slice has no position.
void sort_slices(std::vector<image_slice>& slices);

/// Groups `files` by Series Instance UID and loads every image series: slices
/// sorted along the slice normal by ImagePositionPatient (InstanceNumber
/// without it), compressed pixel data decoded (JPEG, JPEG-LS, RLE). Files
/// without pixel data are skipped and listed in `skipped`. A file that cannot
/// be read or decoded (JPEG 2000 here, damaged pixel data) is left out and
/// listed in `unreadable`, with its name and why; only when no file at all
/// can be read does loading fail, with the first one's reason.
struct loaded_series {
  std::vector<series_volume> series;
  std::vector<std::string> skipped;    // "<file>: <why>": not image volumes
  std::vector<std::string> unreadable; // "<file>: <why>": images that cannot be read
};
result<loaded_series> load_series(const std::vector<std::filesystem::path>& files);

vec3 cross(const vec3& a, const vec3& b);
double dot(const vec3& a, const vec3& b);

} // namespace dcmstreams
