#include "pipeline/imaging/kernels.hpp"
#include "pipeline/imaging/median_network.hpp"

#include "pipeline/foundation/json.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

// The neighbourhood kernels' loops are also built for AVX2 with FMA
// (x86-64-v3) and picked at run time where the CPU has them (GCC's function
// multi-versioning); the default build keeps to plain x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DCMSTREAMS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
// The median's 27 values per voxel fit AVX-512's 32 registers: it has an
// x86-64-v4 version as well.
#define DCMSTREAMS_VECTOR_CLONES_WIDE                                                              \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DCMSTREAMS_VECTOR_CLONES
#define DCMSTREAMS_VECTOR_CLONES_WIDE
#endif

namespace dcmstreams {

const std::vector<std::string>& kernel_names() {
  static const std::vector<std::string> names{"gaussian", "median",   "threshold", "window",
                                              "mip",      "resample", "stats",     "deidentify"};
  return names;
}

namespace {

std::string number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

// A copy of `in` with its geometry and scale but no voxels.
volume shaped_like(const volume& in) {
  volume out;
  out.nx = in.nx;
  out.ny = in.ny;
  out.nz = in.nz;
  out.slope = in.slope;
  out.intercept = in.intercept;
  out.spacing = in.spacing;
  out.origin = in.origin;
  out.row_direction = in.row_direction;
  out.column_direction = in.column_direction;
  out.slice_direction = in.slice_direction;
  out.slice_thickness = in.slice_thickness;
  out.bits_stored = in.bits_stored;
  out.is_signed = in.is_signed;
  return out;
}

// The stored values whose real values lie in [lower, upper], as an int range
// (empty when lo > hi). Works for negative slopes too.
std::pair<int, int> stored_range(const volume& v, double lower, double upper) {
  double a = (lower - v.intercept) / v.slope, b = (upper - v.intercept) / v.slope;
  if (a > b)
    std::swap(a, b);
  double lo = std::ceil(std::max(a, -32768.0)), hi = std::floor(std::min(b, 32767.0));
  return {static_cast<int>(lo), static_cast<int>(hi)};
}

} // namespace

std::string kernel_step::describe() const {
  if (kernel == "gaussian")
    return "gaussian sigma " + number(sigma_mm) + " mm" + (recursive ? ", recursive" : "");
  if (kernel == "median")
    return "median 3x3x3";
  if (kernel == "threshold")
    return "threshold " + mode + " [" + (lower ? number(*lower) : "-inf") + ", " +
           (upper ? number(*upper) : "inf") + "]";
  if (kernel == "window")
    return "window center " + number(center) + " width " + number(width);
  if (kernel == "mip")
    return slab_mm > 0 ? "mip slab " + number(slab_mm) + " mm" : "mip whole volume";
  if (kernel == "resample")
    return spacing_mm ? "resample to " + number(*spacing_mm) + " mm"
                      : "resample by factor " + number(factor.value_or(1));
  if (kernel == "stats")
    return "stats threshold " + number(threshold);
  if (kernel == "deidentify")
    return shift_dates ? "deidentify, dates moved" : "deidentify";
  return kernel;
}

bool kernel_step::makes_image() const {
  return kernel != "stats" && kernel != "deidentify";
}

result<kernel_step> parse_kernel_step(std::string_view text, const std::string& where) {
  auto object = json::parse(text, where);
  if (!object)
    return object.error();
  return read_kernel_step(*object, where);
}

result<kernel_step> read_kernel_step(const json::value& object, const std::string& where) {
  if (!object.is_object())
    return failure{ec::invalid_config, where + ": must be an object with \"kernel\""};
  json::problems problems{"", {}};
  json::object_reader reader{object, where, problems};
  kernel_step step;
  auto kernel = reader.get_string("kernel");
  if (!kernel)
    return failure{ec::invalid_config, where + ": needs a \"kernel\""};
  step.kernel = *kernel;
  auto positive = [&](std::string_view key, double& out) {
    if (auto v = reader.get_number(key, json::above_zero, "a number above 0"))
      out = *v;
  };
  if (step.kernel == "gaussian") {
    reader.reject_unknown_keys({"kernel", "sigma_mm", "method"});
    positive("sigma_mm", step.sigma_mm);
    if (auto method = reader.get_string("method")) {
      if (*method != "exact" && *method != "recursive")
        problems.add(reader.path_of("method"), "must be \"exact\" or \"recursive\"");
      step.recursive = *method == "recursive";
    }
  } else if (step.kernel == "median") {
    reader.reject_unknown_keys({"kernel"});
  } else if (step.kernel == "threshold") {
    reader.reject_unknown_keys({"kernel", "lower", "upper", "mode", "background"});
    step.lower = reader.get_number("lower");
    step.upper = reader.get_number("upper");
    step.background = reader.get_number("background");
    if (auto mode = reader.get_string("mode")) {
      if (*mode != "mask" && *mode != "binarize")
        problems.add(reader.path_of("mode"), "must be \"mask\" or \"binarize\"");
      step.mode = *mode;
    }
    if (!step.lower && !step.upper)
      problems.add(where, "needs \"lower\", \"upper\" or both");
    if (step.lower && step.upper && *step.lower > *step.upper)
      problems.add(reader.path_of("lower"), "must not be above \"upper\"");
  } else if (step.kernel == "window") {
    reader.reject_unknown_keys({"kernel", "center", "width"});
    if (auto c = reader.get_number("center"))
      step.center = *c;
    if (auto w = reader.get_number("width", json::at_least_one, "at least 1"))
      step.width = *w;
  } else if (step.kernel == "mip") {
    reader.reject_unknown_keys({"kernel", "slab_mm"});
    if (auto slab =
            reader.get_number("slab_mm", json::at_least_zero, "0 (whole volume) or more mm"))
      step.slab_mm = *slab;
  } else if (step.kernel == "resample") {
    reader.reject_unknown_keys({"kernel", "spacing_mm", "factor"});
    if (reader.has("spacing_mm") == reader.has("factor"))
      problems.add(where, "needs exactly one of \"spacing_mm\" and \"factor\"");
    double value = 0;
    if (reader.has("spacing_mm")) {
      positive("spacing_mm", value);
      if (value > 0)
        step.spacing_mm = value;
    } else if (reader.has("factor")) {
      positive("factor", value);
      if (value > 0)
        step.factor = value;
    }
  } else if (step.kernel == "stats") {
    reader.reject_unknown_keys({"kernel", "threshold", "bins"});
    if (auto t = reader.get_number("threshold"))
      step.threshold = *t;
    if (auto b = reader.get_integer("bins", 1, 4096))
      step.bins = static_cast<int>(*b);
  } else if (step.kernel == "deidentify") {
    reader.reject_unknown_keys({"kernel", "shift_dates"});
    if (auto shift = reader.get_flag("shift_dates"))
      step.shift_dates = *shift;
  } else {
    std::string names;
    for (auto& name : kernel_names())
      names += (names.empty() ? "" : ", ") + name;
    return failure{ec::invalid_config,
                   where + ".kernel: unknown kernel \"" + step.kernel + "\"; known: " + names};
  }
  if (!problems.empty()) {
    std::string all;
    for (auto& m : problems.messages)
      all += (all.empty() ? "" : "\n") + m;
    return failure{ec::invalid_config, all};
  }
  return step;
}

namespace {

// The output of a neighbourhood kernel, its voxels still to be written: the
// input's shape, with the scale and bits of the steps run on its blocks.
volume output_like(const volume& in, const voxel_pass* then) {
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  if (then)
    then->finish(out);
  return out;
}

} // namespace

// -- gaussian ----------------------------------------------------------------------

namespace {

std::vector<float> gaussian_weights(double sigma_voxels) {
  int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma_voxels)));
  std::vector<float> weights(static_cast<std::size_t>(2 * radius + 1));
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    double w = std::exp(-0.5 * i * i / (sigma_voxels * sigma_voxels));
    weights[static_cast<std::size_t>(i + radius)] = static_cast<float>(w);
    sum += w;
  }
  for (auto& w : weights)
    w = static_cast<float>(w / sum);
  return weights;
}

std::vector<float> weights_along(const volume& in, double sigma_mm, int axis) {
  std::size_t n = axis == 0 ? in.nx : axis == 1 ? in.ny : in.nz;
  double sigma = sigma_mm / in.spacing[static_cast<std::size_t>(axis)];
  // Below a tenth of a voxel the kernel is the identity along that axis.
  return sigma > 0.1 && n > 1 ? gaussian_weights(sigma) : std::vector<float>{1.0f};
}

// Eight floats as one value: one AVX register where the CPU has them, two
// SSE registers on plain x86-64.
using float8 = float __attribute__((vector_size(32)));

/// out[i..i+8V) = Σ_k weights[k] · rows[k][i..i+8V) for a symmetric kernel
/// of 2 r + 1 taps: V vectors of eight sums stay in registers over all taps
/// (four keep the multiply-adds busy: each waits about four cycles for the
/// one before it), and the rows a weight is shared by are added before the
/// multiply, which halves the multiply-adds (adds have their own units).
template <std::size_t V>
__attribute__((always_inline)) inline void weighted_vectors(const float* const* rows,
                                                            const float* weights, std::size_t r,
                                                            float* out, std::size_t i) {
  // Starts from the centre tap, not from zeros: GCC zeroes an array of
  // vectors with `rep stos`, which costs more than the sums.
  float8 sums[V], x, y;
  for (std::size_t v = 0; v < V; ++v) {
    // memcpy: unaligned loads and stores, no vector passed by value.
    std::memcpy(&x, rows[r] + i + 8 * v, sizeof x);
    sums[v] = weights[r] * x;
  }
  for (std::size_t k = 0; k < r; ++k) {
    const float w = weights[k];
    for (std::size_t v = 0; v < V; ++v) {
      std::memcpy(&x, rows[k] + i + 8 * v, sizeof x);
      std::memcpy(&y, rows[2 * r - k] + i + 8 * v, sizeof y);
      sums[v] += w * (x + y);
    }
  }
  for (std::size_t v = 0; v < V; ++v)
    std::memcpy(out + i + 8 * v, &sums[v], sizeof x);
}

/// out[i] = Σ_k weights[k] · rows[k][i] for i < n, the kernel symmetric
/// with 2 r + 1 taps. Every pass of the Gaussian is this sum: along x over
/// one line shifted by k, along y over rows, along z over planes. The same
/// additions in the same order for every voxel.
__attribute__((always_inline)) inline void weighted_rows(const float* const* rows,
                                                         const float* weights, std::size_t r,
                                                         float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32)
    weighted_vectors<4>(rows, weights, r, out, i);
  for (; i + 8 <= n; i += 8)
    weighted_vectors<1>(rows, weights, r, out, i);
  for (; i < n; ++i) {
    float sum = weights[r] * rows[r][i];
    for (std::size_t k = 0; k < r; ++k)
      sum += weights[k] * (rows[k][i] + rows[2 * r - k][i]);
    out[i] = sum;
  }
}

/// One row filtered along x by a symmetric kernel: copied to `line` (as
/// float, room for nx + taps - 1) with its edge voxels repeated for the
/// kernel's radius, then the taps summed into `out`.
template <typename Voxel>
__attribute__((always_inline)) inline void filter_row(const Voxel* row, std::size_t nx,
                                                      const std::vector<float>& taps, float* line,
                                                      const float** sources, float* out) {
  const std::size_t r = taps.size() / 2;
  std::fill(line, line + r, static_cast<float>(row[0]));
  std::copy(row, row + nx, line + r);
  std::fill(line + r + nx, line + 2 * r + nx, static_cast<float>(row[nx - 1]));
  for (std::size_t k = 0; k < taps.size(); ++k)
    sources[k] = line + k;
  weighted_rows(sources, taps.data(), r, out, nx);
}

// Float sums to int16 voxels, rounded half away from zero, clamped.
DCMSTREAMS_VECTOR_CLONES
void round_to_voxels(const float* sums, std::int16_t* target, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    float v = std::clamp(sums[i], -32768.0f, 32767.0f);
    target[i] = static_cast<std::int16_t>(v + (v >= 0 ? 0.5f : -0.5f));
  }
}

struct gaussian_taps {
  std::vector<float> x, y, z;
  std::size_t rx, ry, rz; // radii: taps = 2 r + 1
};

std::size_t clamped(long i, std::size_t n) {
  return static_cast<std::size_t>(std::clamp(i, 0L, static_cast<long>(n) - 1));
}

// One block of the output: rows [y0, y1) of planes [z0, z1). Each input
// plane the block needs is read once, filtered along x (rows y0 - ry to
// y1 + ry) and y into a ring of 2 rz + 1 planes of the block's rows; each
// output plane is then the weighted sum of the ring's planes. The block's
// float data (a few hundred KB) stays in the core's cache, so memory sees
// one read of the input and one write of the output; borders repeat the
// edge voxel.
DCMSTREAMS_VECTOR_CLONES
void gaussian_block(const volume& in, volume& out, const gaussian_taps& t, std::size_t y0,
                    std::size_t y1, std::size_t z0, std::size_t z1, const voxel_pass* then) {
  const std::size_t nx = in.nx, ny = in.ny, nz = in.nz, rows = y1 - y0;
  const std::size_t ring_planes = 2 * t.rz + 1;
  const std::size_t halo0 = clamped(static_cast<long>(y0) - static_cast<long>(t.ry), ny),
                    halo1 = clamped(static_cast<long>(y1 - 1 + t.ry), ny) + 1;
  std::vector<float> line(nx + 2 * t.rx), along_x((halo1 - halo0) * nx),
      ring(ring_planes * rows * nx), sum(rows * nx);
  std::vector<const float*> sources(std::max({t.x.size(), t.y.size(), t.z.size()}));

  std::size_t next = clamped(static_cast<long>(z0) - static_cast<long>(t.rz), nz);
  for (std::size_t z = z0; z < z1; ++z) {
    // No lambda here: it would be built for the default target only.
    for (std::size_t last = clamped(static_cast<long>(z + t.rz), nz); next <= last; ++next) {
      for (std::size_t y = halo0; y < halo1; ++y) {
        filter_row(in.voxels.data() + (next * ny + y) * nx, nx, t.x, line.data(), sources.data(),
                   along_x.data() + (y - halo0) * nx);
      }
      float* target = ring.data() + (next % ring_planes) * rows * nx;
      for (std::size_t y = y0; y < y1; ++y) {
        for (std::size_t k = 0; k < t.y.size(); ++k)
          sources[k] =
              along_x.data() +
              (clamped(static_cast<long>(y + k) - static_cast<long>(t.ry), ny) - halo0) * nx;
        weighted_rows(sources.data(), t.y.data(), t.ry, target + (y - y0) * nx, nx);
      }
    }
    for (std::size_t k = 0; k < t.z.size(); ++k)
      sources[k] = ring.data() +
                   (clamped(static_cast<long>(z + k) - static_cast<long>(t.rz), nz) % ring_planes) *
                       rows * nx;
    weighted_rows(sources.data(), t.z.data(), t.rz, sum.data(), rows * nx);
    std::int16_t* target = out.voxels.data() + (z * ny + y0) * nx;
    round_to_voxels(sum.data(), target, rows * nx);
    if (then)
      then->apply(target, rows * nx);
  }
}

// Wide kernels: Young and van Vliet's third-order recursive Gaussian
// (Signal Processing 44, 1995). A forward and a backward pass of
//   w[n] = B in[n] + a1 w[n-1] + a2 w[n-2] + a3 w[n-3]
// cost four multiply-adds per voxel and direction, whatever sigma is. The
// ends repeat the edge voxel exactly: the forward pass starts from the edge
// value (the steady state of a constant past), the backward pass from the
// values a constant future leaves (Triggs and Sdika's matrix, IEEE TSP
// 2006, here worked out by running the filter far past the end).
struct recursive_gaussian {
  float b = 1, a1 = 0, a2 = 0, a3 = 0;
  float m[3][3] = {}; // backward start: y[N + i] - u = Σ_j m[i][j] (w[N - 1 - j] - u)
};

recursive_gaussian make_recursive(double sigma) {
  const double q =
      sigma >= 2.5 ? 0.98711 * sigma - 0.96330 : 3.97156 - 4.14554 * std::sqrt(1 - 0.26891 * sigma);
  const double b0 = 1.57825 + 2.44413 * q + 1.4281 * q * q + 0.422205 * q * q * q,
               b1 = 2.44413 * q + 2.85619 * q * q + 1.26661 * q * q * q,
               b2 = -(1.4281 * q * q + 1.26661 * q * q * q), b3 = 0.422205 * q * q * q;
  const double a1 = b1 / b0, a2 = b2 / b0, a3 = b3 / b0, b = 1 - (a1 + a2 + a3);
  recursive_gaussian r;
  r.b = static_cast<float>(b);
  r.a1 = static_cast<float>(a1);
  r.a2 = static_cast<float>(a2);
  r.a3 = static_cast<float>(a3);
  // Past the end the input stays the edge value u: in deviations from u, a
  // zero input. Each column of m is the backward pass's start for a unit
  // deviation of one of the forward pass's last three values.
  const std::size_t beyond = static_cast<std::size_t>(40 * q) + 100;
  for (std::size_t j = 0; j < 3; ++j) {
    std::vector<double> w(beyond + 3, 0.0), y(beyond + 6, 0.0);
    w[2 - j] = 1; // w[0], w[1], w[2]: the values at N - 3, N - 2, N - 1
    for (std::size_t n = 3; n < beyond + 3; ++n)
      w[n] = a1 * w[n - 1] + a2 * w[n - 2] + a3 * w[n - 3];
    for (std::size_t n = beyond + 2; n >= 3; --n)
      y[n] = b * w[n] + a1 * y[n + 1] + a2 * y[n + 2] + a3 * y[n + 3];
    for (std::size_t i = 0; i < 3; ++i)
      r.m[i][j] = static_cast<float>(y[3 + i]); // y[3]: the value at N
  }
  return r;
}

/// Filters `lanes` lines at once in place: line i's n values are
/// data[k * stride + i]. `edges` holds 5 × lanes floats of room.
DCMSTREAMS_VECTOR_CLONES
void recursive_along(float* data, std::size_t n, std::size_t stride, std::size_t lanes,
                     const recursive_gaussian& r, float* edges) {
  float *first = edges, *after = edges + lanes; // after: y at N, N + 1, N + 2
  const float b = r.b, a1 = r.a1, a2 = r.a2, a3 = r.a3;
  std::copy(data, data + lanes, first);
  float* last_input = after + 3 * lanes;
  std::copy(data + (n - 1) * stride, data + (n - 1) * stride + lanes, last_input);
  for (std::size_t k = 0; k < n; ++k) {
    float* row = data + k * stride;
    const float* p1 = k >= 1 ? row - stride : first;
    const float* p2 = k >= 2 ? row - 2 * stride : first;
    const float* p3 = k >= 3 ? row - 3 * stride : first;
    for (std::size_t i = 0; i < lanes; ++i)
      row[i] = b * row[i] + a1 * p1[i] + a2 * p2[i] + a3 * p3[i];
  }
  const float* w1 = data + (n - 1) * stride;
  const float* w2 = n >= 2 ? w1 - stride : first;
  const float* w3 = n >= 3 ? w1 - 2 * stride : first;
  for (std::size_t e = 0; e < 3; ++e) {
    const float m0 = r.m[e][0], m1 = r.m[e][1], m2 = r.m[e][2];
    float* target = after + e * lanes;
    for (std::size_t i = 0; i < lanes; ++i) {
      const float u = last_input[i];
      target[i] = u + m0 * (w1[i] - u) + m1 * (w2[i] - u) + m2 * (w3[i] - u);
    }
  }
  for (std::size_t k = n; k-- > 0;) {
    float* row = data + k * stride;
    const float* q1 = k + 1 < n ? row + stride : after + (k + 1 - n) * lanes;
    const float* q2 = k + 2 < n ? row + 2 * stride : after + (k + 2 - n) * lanes;
    const float* q3 = k + 3 < n ? row + 3 * stride : after + (k + 3 - n) * lanes;
    for (std::size_t i = 0; i < lanes; ++i)
      row[i] = b * row[i] + a1 * q1[i] + a2 * q2[i] + a3 * q3[i];
  }
}

/// How the Gaussian goes along one axis.
struct axis_filter {
  bool recursive = false;
  std::vector<float> taps; // the kernel when not recursive (one tap: nothing to do)
  recursive_gaussian iir;
};

// Sigma in voxels from which gaussian_method::recursive filters an axis
// recursively: a kernel of 19 taps or more, where four multiply-adds each
// way cost less (and below which the recursive filter is less accurate).
constexpr double recursive_from_sigma = 3.0;

axis_filter filter_along(const volume& in, double sigma_mm, int axis, gaussian_method method) {
  axis_filter f;
  std::size_t n = axis == 0 ? in.nx : axis == 1 ? in.ny : in.nz;
  double sigma = sigma_mm / in.spacing[static_cast<std::size_t>(axis)];
  f.recursive = method == gaussian_method::recursive && sigma >= recursive_from_sigma && n > 1;
  if (f.recursive)
    f.iir = make_recursive(sigma);
  else
    f.taps = weights_along(in, sigma_mm, axis);
  return f;
}

/// out (cols × rows) = in (rows × cols) transposed, in tiles of 16 × 16 that
/// stay in cache (an element at a time would touch a new cache line for
/// every write).
__attribute__((always_inline)) inline void transpose(const float* in, float* out, std::size_t rows,
                                                     std::size_t cols) {
  constexpr std::size_t tile = 16;
  for (std::size_t r0 = 0; r0 < rows; r0 += tile)
    for (std::size_t c0 = 0; c0 < cols; c0 += tile) {
      const std::size_t r1 = std::min(rows, r0 + tile), c1 = std::min(cols, c0 + tile);
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c)
          out[c * rows + r] = in[r * cols + c];
    }
}

// One plane of the recursive path: to float, filtered along x and y, into
// `target`. `work` holds two planes, `line` a row with its borders, `edges`
// 5 × max(nx, ny) floats.
DCMSTREAMS_VECTOR_CLONES
void recursive_plane(const std::int16_t* source, float* target, std::size_t nx, std::size_t ny,
                     const axis_filter& fx, const axis_filter& fy, float* work, float* line,
                     float* edges, const float** sources) {
  const std::size_t plane = nx * ny;
  float *p = target, *t = work;
  for (std::size_t i = 0; i < plane; ++i)
    p[i] = source[i];
  if (fx.recursive) {
    // Along x through a transposed copy, so that many lines run at once.
    transpose(p, t, ny, nx);
    recursive_along(t, nx, ny, ny, fx.iir, edges);
    transpose(t, p, nx, ny);
  } else if (fx.taps.size() > 1) {
    for (std::size_t y = 0; y < ny; ++y)
      filter_row(p + y * nx, nx, fx.taps, line, sources, t + y * nx);
    std::copy(t, t + plane, p);
  }
  if (fy.recursive) {
    recursive_along(p, ny, nx, nx, fy.iir, edges);
  } else if (fy.taps.size() > 1) {
    const std::size_t r = fy.taps.size() / 2;
    for (std::size_t y = 0; y < ny; ++y) {
      for (std::size_t k = 0; k < fy.taps.size(); ++k)
        sources[k] = p + clamped(static_cast<long>(y + k) - static_cast<long>(r), ny) * nx;
      weighted_rows(sources, fy.taps.data(), r, t + y * nx, nx);
    }
    std::copy(t, t + plane, p);
  }
}

// One plane of sums over planes (the taps along z).
DCMSTREAMS_VECTOR_CLONES
void sum_planes(const float* const* planes, const std::vector<float>& taps, float* sums,
                std::size_t n) {
  weighted_rows(planes, taps.data(), taps.size() / 2, sums, n);
}

// The Gaussian when an axis's sigma is recursive_from_sigma voxels or more:
// the planes filtered along x and y in parallel into a float volume, then
// along z, recursively over runs of columns or by taps plane by plane.
volume recursive_gaussian_volume(const volume& in, const axis_filter& fx, const axis_filter& fy,
                                 const axis_filter& fz, volume out, const voxel_pass* then) {
  const std::size_t nx = in.nx, ny = in.ny, nz = in.nz, plane = nx * ny;
  // Every element is written before it is read: no zero-filling.
  std::unique_ptr<float[]> filtered{new float[in.size()]};
  const std::size_t widest = std::max({fx.taps.size(), fy.taps.size(), fz.taps.size()});
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, nz), [&](auto range) {
    std::vector<float> work(plane), line(nx + widest), edges(5 * std::max(nx, ny));
    std::vector<const float*> sources(widest);
    for (std::size_t z = range.begin(); z != range.end(); ++z)
      recursive_plane(in.voxels.data() + z * plane, filtered.get() + z * plane, nx, ny, fx, fy,
                      work.data(), line.data(), edges.data(), sources.data());
  });
  if (fz.recursive) {
    constexpr std::size_t columns = 2048; // per run: 8 KB a plane, all planes' worth in cache
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, plane, columns), [&](auto range) {
      std::vector<float> edges(5 * range.size());
      recursive_along(filtered.get() + range.begin(), nz, plane, range.size(), fz.iir,
                      edges.data());
    });
  }
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, nz), [&](auto range) {
    std::vector<float> sums(fz.recursive ? 0 : plane);
    std::vector<const float*> sources(fz.taps.size());
    for (std::size_t z = range.begin(); z != range.end(); ++z) {
      const float* planes = filtered.get() + z * plane;
      if (!fz.recursive && fz.taps.size() > 1) {
        const std::size_t r = fz.taps.size() / 2;
        for (std::size_t k = 0; k < fz.taps.size(); ++k)
          sources[k] =
              filtered.get() + clamped(static_cast<long>(z + k) - static_cast<long>(r), nz) * plane;
        sum_planes(sources.data(), fz.taps, sums.data(), plane);
        planes = sums.data();
      }
      std::int16_t* target = out.voxels.data() + z * plane;
      round_to_voxels(planes, target, plane);
      if (then)
        then->apply(target, plane);
    }
  });
  return out;
}

} // namespace

// Three separable passes, fused: the volume is cut into blocks of rows and
// planes that run in parallel, each filtered along x, y and z while its
// data is in cache (gaussian_block). With gaussian_method::recursive, wide
// kernels (sigma of 3 voxels or more along an axis) go recursively along that
// axis instead, at a cost that does not grow with sigma
// (recursive_gaussian_volume).
volume gaussian(const volume& in, double sigma_mm, const voxel_pass* then, gaussian_method method) {
  auto fx = filter_along(in, sigma_mm, 0, method), fy = filter_along(in, sigma_mm, 1, method),
       fz = filter_along(in, sigma_mm, 2, method);
  gaussian_taps t;
  t.x = fx.taps;
  t.y = fy.taps;
  t.z = fz.taps;
  t.rx = t.x.size() / 2;
  t.ry = t.y.size() / 2;
  t.rz = t.z.size() / 2;
  volume out = output_like(in, then);
  if (in.size() == 0)
    return out;
  if (fx.recursive || fy.recursive || fz.recursive)
    return recursive_gaussian_volume(in, fx, fy, fz, std::move(out), then);
  // Blocks of rows small enough that the block's ring of 2 rz + 1 planes
  // stays in a core's cache; as few runs of planes as give every thread
  // several blocks, since each run filters 2 rz planes more than it writes.
  const std::size_t row_grain = 32, row_blocks = (in.ny + row_grain - 1) / row_grain;
  const auto wanted = 4 * static_cast<std::size_t>(tbb::this_task_arena::max_concurrency());
  const std::size_t plane_runs = (wanted + row_blocks - 1) / row_blocks;
  const std::size_t plane_grain = std::max<std::size_t>(1, (in.nz + plane_runs - 1) / plane_runs);
  tbb::parallel_for(
      tbb::blocked_range2d<std::size_t>(0, in.nz, plane_grain, 0, in.ny, row_grain),
      [&](const tbb::blocked_range2d<std::size_t>& block) {
        gaussian_block(in, out, t, block.cols().begin(), block.cols().end(), block.rows().begin(),
                       block.rows().end(), then);
      },
      tbb::simple_partitioner{});
  return out;
}

// -- median ------------------------------------------------------------------------

namespace {

// Sixteen int16 voxels as one value: one AVX2 register, two SSE registers.
using short16 = std::int16_t __attribute__((vector_size(32)));

struct lane_min {
  __attribute__((always_inline)) short16 operator()(short16 a, short16 b) const {
    return a < b ? a : b;
  }
};
struct lane_max {
  __attribute__((always_inline)) short16 operator()(short16 a, short16 b) const {
    return a < b ? b : a;
  }
};

// Rows [y0, y1) of plane z: the nine rows of neighbours (dz, dy) are copied
// with their edge voxel repeated once at each end; each column of nine (one
// x) is sorted once into `sorted` (rank k at row k), so that a voxel's three
// columns are loads at x, x + 1 and x + 2 (median_network.hpp). No lambdas:
// they would be built for the default target only.
DCMSTREAMS_VECTOR_CLONES_WIDE
void median_rows(const volume& in, volume& out, std::size_t z, std::size_t y0, std::size_t y1,
                 const voxel_pass* then) {
  const std::size_t nx = in.nx, ny = in.ny, nz = in.nz, width = nx + 2;
  // Sixteen spare voxels past each sorted row: the last voxels' loads reach
  // past the columns there are.
  const std::size_t stride = width + 16;
  std::vector<std::int16_t> padded(9 * width + 16), sorted(9 * stride);
  for (std::size_t y = y0; y < y1; ++y) {
    for (std::size_t r = 0; r < 9; ++r) {
      const std::size_t source_z = clamped(static_cast<long>(z + r / 3) - 1, nz),
                        source_y = clamped(static_cast<long>(y + r % 3) - 1, ny);
      const std::int16_t* source = in.voxels.data() + (source_z * ny + source_y) * nx;
      std::int16_t* row = padded.data() + r * width;
      row[0] = source[0];
      std::memcpy(row + 1, source, nx * sizeof *source);
      row[nx + 1] = source[nx - 1];
    }
    // Columns past the row's end mix in the next row: only lanes no voxel uses.
    for (std::size_t x = 0; x < width; x += 16) {
      short16 column[9];
#pragma GCC unroll 9
      for (std::size_t r = 0; r < 9; ++r)
        std::memcpy(&column[r], padded.data() + r * width + x, sizeof column[r]);
      median_network::apply(median_network::sort9, column, lane_min{}, lane_max{});
#pragma GCC unroll 9
      for (std::size_t k = 0; k < 9; ++k)
        std::memcpy(sorted.data() + k * stride + x, &column[k], sizeof column[k]);
    }
    std::int16_t* target = out.voxels.data() + (z * ny + y) * nx;
    for (std::size_t x = 0; x < nx; x += 16) {
      short16 columns[3][9];
#pragma GCC unroll 3
      for (std::size_t dx = 0; dx < 3; ++dx)
#pragma GCC unroll 9
        for (std::size_t k = 0; k < 9; ++k)
          std::memcpy(&columns[dx][k], sorted.data() + k * stride + x + dx, sizeof(short16));
      const short16 median = median_network::median_of_sorted_columns(
          columns[0], columns[1], columns[2], lane_min{}, lane_max{});
      // The last voxels: sixteen computed, those in the row kept.
      std::memcpy(target + x, &median, std::min<std::size_t>(16, nx - x) * sizeof *target);
    }
    if (then)
      then->apply(target, nx);
  }
}

} // namespace

// Each voxel's median of its 27 neighbours (edges repeated), sixteen voxels
// at a time through a fixed network of minima and maxima (median_network.hpp).
volume median3(const volume& in, const voxel_pass* then) {
  volume out = output_like(in, then);
  if (in.size() == 0)
    return out;
  tbb::parallel_for(tbb::blocked_range2d<std::size_t>(0, in.nz, 1, 0, in.ny, 16),
                    [&](const tbb::blocked_range2d<std::size_t>& block) {
                      for (std::size_t z = block.rows().begin(); z != block.rows().end(); ++z)
                        median_rows(in, out, z, block.cols().begin(), block.cols().end(), then);
                    });
  return out;
}

// -- threshold and window: steps on each voxel's value alone ----------------------

namespace {

bool is_whole(double v, double limit) {
  return v == std::floor(v) && std::abs(v) <= limit;
}

// Compares and selects on int16 lanes, no table: the loops vectorize and run
// at memory speed. The values are arguments, not members read through a
// pointer, so that a store to the voxels cannot change them and they stay
// in registers.
DCMSTREAMS_VECTOR_CLONES
void threshold_block(std::int16_t* __restrict voxels, std::size_t n, std::int16_t low,
                     std::int16_t high, std::int16_t outside, bool binarize, bool empty) {
  if (empty) {
    std::fill(voxels, voxels + n, outside);
  } else if (binarize) {
    for (std::size_t i = 0; i < n; ++i) {
      std::int16_t v = voxels[i];
      voxels[i] = static_cast<std::int16_t>((v >= low) & (v <= high));
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      std::int16_t v = voxels[i];
      voxels[i] = ((v >= low) & (v <= high)) ? v : outside;
    }
  }
}

// The VOI function when slope, intercept, centre and width are whole
// numbers (CT, most MR) and the width at most 4096. With d = v - centre,
// v = slope s + intercept, clamped to [-width, width] (0 below and 255 above
// either way):
//   y + 1/2 = (510 d + 256 width - 1) / (2 (width - 1)),
// an odd numerator over an even denominator: never a whole number, never
// nearer to one than 1 / 8190. The numerator is exact in float (below
// 2^22); one rounding of the reciprocal and one of the product stay below
// 400 · 2^-23 = 1 / 21000, so floor() of it is lround(y), as the table
// gives it, eight voxels at a time instead of one lookup each.
DCMSTREAMS_VECTOR_CLONES
void window_whole(std::int16_t* voxels, std::size_t n, int slope, int offset, int width, int bias,
                  float reciprocal) {
  for (std::size_t i = 0; i < n; ++i) {
    int d = slope * voxels[i] + offset;
    d = d < -width ? -width : d > width ? width : d;
    int q = static_cast<int>(std::floor(static_cast<float>(510 * d + bias) * reciprocal));
    voxels[i] = static_cast<std::int16_t>(q < 0 ? 0 : q > 255 ? 255 : q);
  }
}

// PS3.3 C.11.2.1.2.1, the linear function to 0..255, for every stored value
// (any other parameters).
std::shared_ptr<const std::vector<std::int16_t>> window_table(double slope, double intercept,
                                                              double center, double width) {
  auto table = std::make_shared<std::vector<std::int16_t>>(65536);
  for (int stored = -32768; stored <= 32767; ++stored) {
    double v = stored * slope + intercept;
    double y;
    if (v <= center - 0.5 - (width - 1) / 2)
      y = 0;
    else if (v > center - 0.5 + (width - 1) / 2)
      y = 255;
    else
      y = ((v - (center - 0.5)) / (width - 1) + 0.5) * 255;
    (*table)[static_cast<std::size_t>(stored + 32768)] =
        static_cast<std::int16_t>(std::lround(std::clamp(y, 0.0, 255.0)));
  }
  return table;
}

} // namespace

bool voxel_pass::can_fuse(const kernel_step& step) {
  return step.kernel == "window" ||
         (step.kernel == "threshold" && (step.mode == "binarize" || step.background));
}

voxel_pass::voxel_pass(const volume& before, const std::vector<kernel_step>& steps) {
  slope_ = before.slope;
  intercept_ = before.intercept;
  bits_stored_ = before.bits_stored;
  is_signed_ = before.is_signed;
  for (auto& step : steps)
    add(step, std::nullopt);
}

void voxel_pass::add(const kernel_step& step, std::optional<std::int16_t> background) {
  voxel_step made;
  if (step.kernel == "threshold") {
    volume scale;
    scale.slope = slope_;
    scale.intercept = intercept_;
    made.binarize = step.mode == "binarize";
    auto [lo, hi] = stored_range(scale, step.lower.value_or(-1e300), step.upper.value_or(1e300));
    made.empty = lo > hi || lo > 32767 || hi < -32768;
    made.low = static_cast<std::int16_t>(std::clamp(lo, -32768, 32767));
    made.high = static_cast<std::int16_t>(std::clamp(hi, -32768, 32767));
    made.outside = made.binarize ? 0
                   : background  ? *background
                                 : scale.stored(step.background.value_or(0));
    if (made.binarize) {
      slope_ = 1;
      intercept_ = 0;
    }
  } else {
    made.window = true;
    if (is_whole(slope_, 64) && is_whole(intercept_, 1e6) && is_whole(step.center, 1e6) &&
        is_whole(step.width, 4096) && step.width >= 2) {
      made.slope = static_cast<int>(slope_);
      made.offset = static_cast<int>(intercept_ - step.center);
      made.width = static_cast<int>(step.width);
      made.bias = 256 * made.width - 1;
      made.reciprocal = 1.0f / static_cast<float>(2 * (made.width - 1));
    } else {
      made.table = window_table(slope_, intercept_, step.center, step.width);
    }
    slope_ = 1;
    intercept_ = 0;
    bits_stored_ = 8;
    is_signed_ = false;
  }
  steps_.push_back(std::move(made));
}

void voxel_pass::apply(std::int16_t* voxels, std::size_t n) const {
  for (auto& step : steps_) {
    if (!step.window)
      threshold_block(voxels, n, step.low, step.high, step.outside, step.binarize, step.empty);
    else if (!step.table)
      window_whole(voxels, n, step.slope, step.offset, step.width, step.bias, step.reciprocal);
    else
      for (std::size_t i = 0; i < n; ++i)
        voxels[i] = (*step.table)[static_cast<std::size_t>(voxels[i] + 32768)];
  }
}

void voxel_pass::finish(volume& v) const {
  v.slope = slope_;
  v.intercept = intercept_;
  v.bits_stored = bits_stored_;
  v.is_signed = is_signed_;
}

volume run_voxel_pass(volume in, const voxel_pass& pass) {
  std::int16_t* data = in.voxels.data();
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.size(), 1 << 15),
                    [&pass, data](auto range) { pass.apply(data + range.begin(), range.size()); });
  pass.finish(in);
  return in;
}

volume threshold(volume in, const kernel_step& step) {
  voxel_pass pass{in, {}};
  // Masking without a background given sets the rest to the lowest value of
  // the whole volume: a pass of its own, before.
  std::optional<std::int16_t> background;
  if (step.mode != "binarize" && !step.background && !in.voxels.empty())
    background = *std::min_element(in.voxels.begin(), in.voxels.end());
  pass.add(step, background);
  return run_voxel_pass(std::move(in), pass);
}

volume window(volume in, double center, double width) {
  kernel_step step;
  step.kernel = "window";
  step.center = center;
  step.width = width;
  voxel_pass pass{in, {step}};
  return run_voxel_pass(std::move(in), pass);
}

// -- mip ---------------------------------------------------------------------------

volume mip(const volume& in, double slab_mm) {
  std::size_t per_slab =
      slab_mm > 0
          ? std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(slab_mm / in.spacing[2])))
          : in.nz;
  per_slab = std::min(per_slab, in.nz);
  volume out = shaped_like(in);
  out.nz = (in.nz + per_slab - 1) / per_slab;
  out.voxels.assign(out.size(), std::numeric_limits<std::int16_t>::min());
  std::size_t plane = in.nx * in.ny;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, out.nz), [&](auto range) {
    for (std::size_t k = range.begin(); k != range.end(); ++k) {
      auto* target = out.voxels.data() + k * plane;
      for (std::size_t z = k * per_slab; z < std::min(in.nz, (k + 1) * per_slab); ++z) {
        const auto* source = in.voxels.data() + z * plane;
        for (std::size_t i = 0; i < plane; ++i)
          target[i] = std::max(target[i], source[i]);
      }
    }
  });
  // Each output slice sits at the centre of its slab.
  double shift = (static_cast<double>(per_slab) - 1) / 2 * in.spacing[2];
  for (int i = 0; i < 3; ++i)
    out.origin[i] = in.origin[i] + shift * in.slice_direction[i];
  out.spacing[2] = static_cast<double>(per_slab) * in.spacing[2];
  out.slice_thickness = out.spacing[2];
  return out;
}

// -- resample ----------------------------------------------------------------------

namespace {

struct sample_point {
  std::size_t below, above; // the input voxels on either side
  double weight;            // of `above`
};

/// Where output index i (spacing `scale` input voxels apart) falls among n.
sample_point sample_between(std::size_t i, double scale, std::size_t n) {
  double f = std::min(static_cast<double>(i) * scale, static_cast<double>(n - 1));
  auto below = static_cast<std::size_t>(f);
  return {below, std::min(below + 1, n - 1), f - static_cast<double>(below)};
}

struct resample_columns {
  std::vector<std::uint32_t> x0, x1;
  std::vector<double> weight;
};

// One output row: the four input rows around it are blended along y and z
// into one row at the input's resolution (contiguous, vectorized), then
// each output column interpolates along x between two of its values.
// Trilinear either way; the order of the three steps changes only the last
// bits of a double.
DCMSTREAMS_VECTOR_CLONES
void resample_row(const std::int16_t* y0z0, const std::int16_t* y1z0, const std::int16_t* y0z1,
                  const std::int16_t* y1z1, double wy, double wz, std::size_t nx, double* row,
                  const resample_columns& columns, std::int16_t* target) {
  for (std::size_t x = 0; x < nx; ++x) {
    double near = y0z0[x] + (y1z0[x] - y0z0[x]) * wy, far = y0z1[x] + (y1z1[x] - y0z1[x]) * wy;
    row[x] = near + (far - near) * wz;
  }
  const std::uint32_t *x0 = columns.x0.data(), *x1 = columns.x1.data();
  const double* wx = columns.weight.data();
  for (std::size_t x = 0; x < columns.x0.size(); ++x) {
    double v = row[x0[x]] + (row[x1[x]] - row[x0[x]]) * wx[x];
    // Half away from zero, as lround, in a form that vectorizes.
    target[x] = static_cast<std::int16_t>(static_cast<int>(v + (v >= 0 ? 0.5 : -0.5)));
  }
}

} // namespace

volume resample(const volume& in, const kernel_step& step) {
  vec3 target;
  for (int i = 0; i < 3; ++i)
    target[i] = step.spacing_mm ? *step.spacing_mm : in.spacing[i] / step.factor.value_or(1);
  volume out = shaped_like(in);
  std::size_t counts[3] = {in.nx, in.ny, in.nz};
  std::size_t new_counts[3];
  for (int i = 0; i < 3; ++i) {
    double extent = static_cast<double>(counts[i] - 1) * in.spacing[i];
    new_counts[i] = static_cast<std::size_t>(std::floor(extent / target[i] + 1e-9)) + 1;
    // A single-voxel axis keeps its own spacing.
    if (counts[i] == 1)
      target[i] = in.spacing[i];
  }
  out.nx = new_counts[0];
  out.ny = new_counts[1];
  out.nz = new_counts[2];
  out.spacing = target;
  if (out.nz != in.nz)
    out.slice_thickness = std::max(in.slice_thickness, target[2]);
  out.voxels.resize(out.size());
  double scale[3];
  for (int i = 0; i < 3; ++i)
    scale[i] = target[i] / in.spacing[i];
  // Where each output column samples a row: the same for every row.
  resample_columns columns;
  for (std::size_t x = 0; x < out.nx; ++x) {
    auto [x0, x1, wx] = sample_between(x, scale[0], in.nx);
    columns.x0.push_back(static_cast<std::uint32_t>(x0));
    columns.x1.push_back(static_cast<std::uint32_t>(x1));
    columns.weight.push_back(wx);
  }
  tbb::parallel_for(
      tbb::blocked_range2d<std::size_t>(0, out.nz, 1, 0, out.ny, 32), [&](auto range) {
        std::vector<double> row(in.nx);
        for (std::size_t z = range.rows().begin(); z != range.rows().end(); ++z) {
          auto [z0, z1, wz] = sample_between(z, scale[2], in.nz);
          for (std::size_t y = range.cols().begin(); y != range.cols().end(); ++y) {
            auto [y0, y1, wy] = sample_between(y, scale[1], in.ny);
            auto input_row = [&in](std::size_t y, std::size_t z) {
              return in.voxels.data() + (z * in.ny + y) * in.nx;
            };
            resample_row(input_row(y0, z0), input_row(y1, z0), input_row(y0, z1), input_row(y1, z1),
                         wy, wz, in.nx, row.data(), columns, &out.at(0, y, z));
          }
        }
      });
  return out;
}

// -- stats -------------------------------------------------------------------------

// One pass counts every stored value (64 Ki bins, per thread); mean, spread,
// range, the count above the threshold and the histogram all follow from
// those counts exactly.
volume_statistics statistics(const volume& in, double threshold_value, int bins) {
  volume_statistics s;
  s.voxels = in.size();
  s.threshold = threshold_value;
  if (in.voxels.empty())
    return s;
  using counts = std::vector<std::uint64_t>;
  auto total = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, in.size(), 1 << 18), counts{},
      [&](auto range, counts c) {
        if (c.empty())
          c.assign(65536, 0);
        const std::int16_t* v = in.voxels.data();
        for (std::size_t i = range.begin(); i != range.end(); ++i)
          ++c[static_cast<std::size_t>(v[i] + 32768)];
        return c;
      },
      [](counts a, const counts& b) {
        if (a.empty())
          return b;
        for (std::size_t i = 0; i < b.size() && !b.empty(); ++i)
          a[i] += b[i];
        return a;
      });
  double sum = 0, squares = 0;
  double lowest = 1e300, highest = -1e300;
  for (std::size_t i = 0; i < total.size(); ++i) {
    if (!total[i])
      continue;
    double real = in.value(static_cast<std::int16_t>(static_cast<int>(i) - 32768));
    double n = static_cast<double>(total[i]);
    sum += n * real;
    squares += n * real * real;
    lowest = std::min(lowest, real);
    highest = std::max(highest, real);
    if (real > threshold_value)
      s.voxels_above += total[i];
  }
  double count = static_cast<double>(in.size());
  s.mean = sum / count;
  s.std_dev = std::sqrt(std::max(0.0, squares / count - s.mean * s.mean));
  s.min = lowest;
  s.max = highest;
  s.volume_above_ml =
      static_cast<double>(s.voxels_above) * in.spacing[0] * in.spacing[1] * in.spacing[2] / 1000.0;
  s.bin_counts.assign(static_cast<std::size_t>(bins), 0);
  double width = (s.max - s.min) / bins;
  for (int b = 0; b <= bins; ++b)
    s.bin_edges.push_back(s.min + b * width);
  for (std::size_t i = 0; i < total.size(); ++i) {
    if (!total[i])
      continue;
    double real = in.value(static_cast<std::int16_t>(static_cast<int>(i) - 32768));
    auto b = width > 0 ? static_cast<std::size_t>((real - s.min) / width) : 0;
    s.bin_counts[std::min(b, s.bin_counts.size() - 1)] += total[i];
  }
  return s;
}

} // namespace dcmstreams
