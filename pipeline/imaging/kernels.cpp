#include "pipeline/imaging/kernels.hpp"

#include "pipeline/foundation/json.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

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

// Applies a 64 Ki-entry table to every voxel in place: any per-value
// function of a volume becomes one load and one store per voxel.
void apply_table(volume& v, const std::vector<std::int16_t>& table) {
  std::int16_t* data = v.voxels.data();
  const std::int16_t* lookup = table.data() + 32768;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, v.size(), 1 << 16), [&](auto range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i)
      data[i] = lookup[data[i]];
  });
}

} // namespace

std::string kernel_step::describe() const {
  if (kernel == "gaussian")
    return "gaussian sigma " + number(sigma_mm) + " mm";
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
    reader.reject_unknown_keys({"kernel", "sigma_mm"});
    positive("sigma_mm", step.sigma_mm);
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

} // namespace

// Three separable passes. The x pass works along rows; the y and z passes
// add whole shifted rows and planes, so every inner loop runs over
// contiguous memory and vectorizes. Borders repeat the edge voxel.
volume gaussian(const volume& in, double sigma_mm) {
  const std::size_t nx = in.nx, ny = in.ny, nz = in.nz, plane = nx * ny;
  auto wx = weights_along(in, sigma_mm, 0), wy = weights_along(in, sigma_mm, 1),
       wz = weights_along(in, sigma_mm, 2);
  const long rx = static_cast<long>(wx.size() / 2), ry = static_cast<long>(wy.size() / 2),
             rz = static_cast<long>(wz.size() / 2);
  // Every element is written before it is read: no zero-filling.
  std::unique_ptr<float[]> a{new float[in.size()]}, b{new float[in.size()]};

  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, ny * nz, 16), [&](auto range) {
    std::vector<float> line(nx + 2 * static_cast<std::size_t>(rx));
    for (std::size_t row = range.begin(); row != range.end(); ++row) {
      const std::int16_t* source = in.voxels.data() + row * nx;
      for (long i = -rx; i < static_cast<long>(nx) + rx; ++i)
        line[static_cast<std::size_t>(i + rx)] =
            source[std::clamp(i, 0L, static_cast<long>(nx) - 1)];
      float* target = a.get() + row * nx;
      std::fill(target, target + nx, 0.0f);
      // Tap by tap over the whole row, so the loop over x vectorizes.
      for (std::size_t k = 0; k < wx.size(); ++k) {
        const float w = wx[k];
        const float* shifted = line.data() + k;
        for (std::size_t x = 0; x < nx; ++x)
          target[x] += w * shifted[x];
      }
    }
  });

  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, nz), [&](auto range) {
    for (std::size_t z = range.begin(); z != range.end(); ++z)
      for (std::size_t y = 0; y < ny; ++y) {
        float* target = b.get() + z * plane + y * nx;
        std::fill(target, target + nx, 0.0f);
        for (long k = -ry; k <= ry; ++k) {
          auto source_y = static_cast<std::size_t>(
              std::clamp(static_cast<long>(y) + k, 0L, static_cast<long>(ny) - 1));
          const float* source = a.get() + z * plane + source_y * nx;
          float w = wy[static_cast<std::size_t>(k + ry)];
          for (std::size_t x = 0; x < nx; ++x)
            target[x] += w * source[x];
        }
      }
  });

  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, nz), [&](auto range) {
    std::vector<float> sum(plane);
    for (std::size_t z = range.begin(); z != range.end(); ++z) {
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (long k = -rz; k <= rz; ++k) {
        auto source_z = static_cast<std::size_t>(
            std::clamp(static_cast<long>(z) + k, 0L, static_cast<long>(nz) - 1));
        const float* source = b.get() + source_z * plane;
        float w = wz[static_cast<std::size_t>(k + rz)];
        for (std::size_t i = 0; i < plane; ++i)
          sum[i] += w * source[i];
      }
      std::int16_t* target = out.voxels.data() + z * plane;
      for (std::size_t i = 0; i < plane; ++i) {
        // Round half away from zero, inline, so the loop stays vectorized.
        float v = std::clamp(sum[i], -32768.0f, 32767.0f);
        target[i] = static_cast<std::int16_t>(v + (v >= 0 ? 0.5f : -0.5f));
      }
    }
  });
  return out;
}

// -- median ------------------------------------------------------------------------

namespace {

// Element-wise: lo[x], hi[x] = min, max. The rows never overlap (restrict),
// so this becomes packed min/max instructions.
void sort_pairs(std::int16_t* __restrict lo, std::int16_t* __restrict hi, std::size_t n) {
  for (std::size_t x = 0; x < n; ++x) {
    std::int16_t a = lo[x], b = hi[x];
    lo[x] = a < b ? a : b;
    hi[x] = a < b ? b : a;
  }
}

} // namespace

// The median of 27 by forgetful selection (Paeth): keep 15 candidates, drop
// the smallest and the largest, take in the next value, until 3 remain. Done
// on whole rows at once: every step is an element-wise min/max over x, which
// the compiler turns into SIMD.
volume median3(const volume& in) {
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  const long nx = static_cast<long>(in.nx), ny = static_cast<long>(in.ny),
             nz = static_cast<long>(in.nz);
  tbb::parallel_for(tbb::blocked_range2d<long>(0, nz, 1, 0, ny, 8), [&](auto range) {
    const std::size_t n = static_cast<std::size_t>(nx);
    std::vector<std::int16_t> storage(27 * n);
    std::int16_t* rows[27];
    for (std::size_t r = 0; r < 27; ++r)
      rows[r] = storage.data() + r * n;
    for (long z = range.rows().begin(); z != range.rows().end(); ++z)
      for (long y = range.cols().begin(); y != range.cols().end(); ++y) {
        // The 27 neighbours of every voxel of the row, as 27 shifted rows.
        std::size_t r = 0;
        for (long dz = -1; dz <= 1; ++dz)
          for (long dy = -1; dy <= 1; ++dy) {
            const std::int16_t* source =
                in.voxels.data() +
                (static_cast<std::size_t>(std::clamp(z + dz, 0L, nz - 1)) * in.ny +
                 static_cast<std::size_t>(std::clamp(y + dy, 0L, ny - 1))) *
                    n;
            for (long dx = -1; dx <= 1; ++dx, ++r)
              for (long x = 0; x < nx; ++x)
                rows[r][x] = source[std::clamp(x + dx, 0L, nx - 1)];
          }
        auto min_max = [n](std::int16_t* lo, std::int16_t* hi) { sort_pairs(lo, hi, n); };
        std::int16_t* window[15];
        std::size_t count = 15, next = 15;
        for (std::size_t i = 0; i < 15; ++i)
          window[i] = rows[i];
        while (count > 3) {
          // Smallest to the front, largest to the back, then both go.
          for (std::size_t i = 1; i < count; ++i)
            min_max(window[0], window[i]);
          for (std::size_t i = 1; i + 1 < count; ++i)
            min_max(window[i], window[count - 1]);
          for (std::size_t i = 0; i + 2 < count; ++i)
            window[i] = window[i + 1];
          count -= 2;
          if (next < 27)
            window[count++] = rows[next++];
        }
        min_max(window[0], window[1]);
        min_max(window[1], window[2]);
        min_max(window[0], window[1]);
        std::copy(window[1], window[1] + n,
                  out.voxels.data() +
                      (static_cast<std::size_t>(z) * in.ny + static_cast<std::size_t>(y)) * n);
      }
  });
  return out;
}

// -- threshold ---------------------------------------------------------------------

volume threshold(volume in, const kernel_step& step) {
  bool binarize = step.mode == "binarize";
  auto [lo, hi] = stored_range(in, step.lower.value_or(-1e300), step.upper.value_or(1e300));
  std::int16_t background = 0;
  if (!binarize)
    background = step.background ? in.stored(*step.background)
                                 : *std::min_element(in.voxels.begin(), in.voxels.end());
  // Compares and selects on int16 lanes, no table: the loop vectorizes and
  // runs at memory speed. An empty range keeps nothing.
  const bool empty = lo > hi || lo > 32767 || hi < -32768;
  const auto low = static_cast<std::int16_t>(std::clamp(lo, -32768, 32767)),
             high = static_cast<std::int16_t>(std::clamp(hi, -32768, 32767));
  const std::int16_t outside = binarize ? 0 : background;
  std::int16_t* data = in.voxels.data();
  // Captured by value: a store through `data` cannot then change them, so
  // the compiler keeps them in registers and vectorizes.
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.size(), 1 << 16), [=](auto range) {
    std::int16_t* __restrict voxels = data;
    if (empty) {
      std::fill(voxels + range.begin(), voxels + range.end(), outside);
    } else if (binarize) {
      for (std::size_t i = range.begin(); i != range.end(); ++i) {
        std::int16_t v = voxels[i];
        voxels[i] = static_cast<std::int16_t>((v >= low) & (v <= high));
      }
    } else {
      for (std::size_t i = range.begin(); i != range.end(); ++i) {
        std::int16_t v = voxels[i];
        voxels[i] = (v >= low) & (v <= high) ? v : outside;
      }
    }
  });
  if (binarize) {
    in.slope = 1;
    in.intercept = 0;
  }
  return in;
}

// -- window ------------------------------------------------------------------------

volume window(volume in, double center, double width) {
  // PS3.3 C.11.2.1.2.1: the linear function, output range 0..255.
  std::vector<std::int16_t> table(65536);
  for (int stored = -32768; stored <= 32767; ++stored) {
    double v = in.value(static_cast<std::int16_t>(stored));
    double y;
    if (v <= center - 0.5 - (width - 1) / 2)
      y = 0;
    else if (v > center - 0.5 + (width - 1) / 2)
      y = 255;
    else
      y = ((v - (center - 0.5)) / (width - 1) + 0.5) * 255;
    table[static_cast<std::size_t>(stored + 32768)] =
        static_cast<std::int16_t>(std::lround(std::clamp(y, 0.0, 255.0)));
  }
  apply_table(in, table);
  in.slope = 1;
  in.intercept = 0;
  in.bits_stored = 8;
  in.is_signed = false;
  return in;
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
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, out.nz), [&](auto range) {
    for (std::size_t z = range.begin(); z != range.end(); ++z) {
      double fz = std::min(static_cast<double>(z) * scale[2], static_cast<double>(in.nz - 1));
      std::size_t z0 = static_cast<std::size_t>(fz), z1 = std::min(z0 + 1, in.nz - 1);
      double wz = fz - static_cast<double>(z0);
      for (std::size_t y = 0; y < out.ny; ++y) {
        double fy = std::min(static_cast<double>(y) * scale[1], static_cast<double>(in.ny - 1));
        std::size_t y0 = static_cast<std::size_t>(fy), y1 = std::min(y0 + 1, in.ny - 1);
        double wy = fy - static_cast<double>(y0);
        for (std::size_t x = 0; x < out.nx; ++x) {
          double fx = std::min(static_cast<double>(x) * scale[0], static_cast<double>(in.nx - 1));
          std::size_t x0 = static_cast<std::size_t>(fx), x1 = std::min(x0 + 1, in.nx - 1);
          double wx = fx - static_cast<double>(x0);
          auto lerp = [](double a, double b, double w) { return a + (b - a) * w; };
          double c00 = lerp(in.at(x0, y0, z0), in.at(x1, y0, z0), wx);
          double c10 = lerp(in.at(x0, y1, z0), in.at(x1, y1, z0), wx);
          double c01 = lerp(in.at(x0, y0, z1), in.at(x1, y0, z1), wx);
          double c11 = lerp(in.at(x0, y1, z1), in.at(x1, y1, z1), wx);
          double v = lerp(lerp(c00, c10, wy), lerp(c01, c11, wy), wz);
          out.at(x, y, z) = static_cast<std::int16_t>(std::lround(v));
        }
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
