#include "pipeline/kernels.hpp"

#include "pipeline/json.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

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
  volume out = in;
  out.voxels.clear();
  return out;
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
  return kernel;
}

bool kernel_step::makes_image() const {
  return kernel != "stats" && kernel != "deidentify";
}

result<kernel_step> parse_kernel_step(std::string_view text, const std::string& where) {
  auto doc = json::document::parse(text, where);
  if (!doc)
    return doc.error();
  simdjson::dom::object object;
  if (doc->root().get(object) != simdjson::SUCCESS)
    return failure{ec::invalid_config, where + ": must be an object with \"kernel\""};
  json::problems problems{"", {}};
  json::object_reader reader{object, where, problems};
  kernel_step step;
  auto kernel = reader.get_string("kernel");
  if (!kernel)
    return failure{ec::invalid_config, where + ": needs a \"kernel\""};
  step.kernel = *kernel;
  auto positive = [&](std::string_view key, double& out) {
    if (auto v = reader.get_number(key)) {
      if (*v <= 0)
        problems.add(reader.path_of(key), "must be a number above 0");
      else
        out = *v;
    }
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
    if (auto w = reader.get_number("width")) {
      if (*w < 1)
        problems.add(reader.path_of("width"), "must be at least 1");
      else
        step.width = *w;
    }
  } else if (step.kernel == "mip") {
    reader.reject_unknown_keys({"kernel", "slab_mm"});
    if (auto slab = reader.get_number("slab_mm")) {
      if (*slab < 0)
        problems.add(reader.path_of("slab_mm"), "must be 0 (whole volume) or more mm");
      else
        step.slab_mm = *slab;
    }
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
    reader.reject_unknown_keys({"kernel"});
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

// Convolves every line along one axis of `data` in place. A line starts at
// `line_start(i)` and advances by `stride`; borders repeat the edge value.
template <class LineStart>
void convolve_lines(std::vector<float>& data, std::size_t lines, std::size_t length,
                    std::size_t stride, LineStart line_start, const std::vector<float>& weights) {
  int radius = static_cast<int>(weights.size() / 2);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, lines, 64), [&](auto range) {
    std::vector<float> line(length), out(length);
    for (std::size_t l = range.begin(); l != range.end(); ++l) {
      std::size_t start = line_start(l);
      for (std::size_t i = 0; i < length; ++i)
        line[i] = data[start + i * stride];
      auto last = static_cast<long>(length) - 1;
      for (long i = 0; i <= last; ++i) {
        float sum = 0;
        for (int k = -radius; k <= radius; ++k) {
          long j = std::clamp(i + k, 0L, last);
          sum += weights[static_cast<std::size_t>(k + radius)] * line[static_cast<std::size_t>(j)];
        }
        out[static_cast<std::size_t>(i)] = sum;
      }
      for (std::size_t i = 0; i < length; ++i)
        data[start + i * stride] = out[i];
    }
  });
}

} // namespace

volume gaussian(const volume& in, double sigma_mm) {
  std::vector<float> data(in.voxels.begin(), in.voxels.end());
  const std::size_t nx = in.nx, ny = in.ny, nz = in.nz;
  double sx = sigma_mm / in.spacing[0], sy = sigma_mm / in.spacing[1],
         sz = sigma_mm / in.spacing[2];
  // Below a tenth of a voxel the kernel is the identity along that axis.
  if (sx > 0.1 && nx > 1)
    convolve_lines(
        data, ny * nz, nx, 1, [&](std::size_t l) { return l * nx; }, gaussian_weights(sx));
  if (sy > 0.1 && ny > 1)
    convolve_lines(
        data, nx * nz, ny, nx, [&](std::size_t l) { return (l / nx) * nx * ny + l % nx; },
        gaussian_weights(sy));
  if (sz > 0.1 && nz > 1)
    convolve_lines(
        data, nx * ny, nz, nx * ny, [&](std::size_t l) { return l; }, gaussian_weights(sz));
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, data.size(), 1 << 16), [&](auto range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i)
      out.voxels[i] = static_cast<std::int16_t>(std::clamp(std::lround(data[i]), -32768L, 32767L));
  });
  return out;
}

// -- median ------------------------------------------------------------------------

volume median3(const volume& in) {
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  const long nx = static_cast<long>(in.nx), ny = static_cast<long>(in.ny),
             nz = static_cast<long>(in.nz);
  tbb::parallel_for(tbb::blocked_range2d<long>(0, nz, 1, 0, ny, 16), [&](auto range) {
    std::int16_t window[27];
    for (long z = range.rows().begin(); z != range.rows().end(); ++z)
      for (long y = range.cols().begin(); y != range.cols().end(); ++y)
        for (long x = 0; x < nx; ++x) {
          int n = 0;
          for (long dz = -1; dz <= 1; ++dz)
            for (long dy = -1; dy <= 1; ++dy)
              for (long dx = -1; dx <= 1; ++dx)
                window[n++] = in.at(static_cast<std::size_t>(std::clamp(x + dx, 0L, nx - 1)),
                                    static_cast<std::size_t>(std::clamp(y + dy, 0L, ny - 1)),
                                    static_cast<std::size_t>(std::clamp(z + dz, 0L, nz - 1)));
          std::nth_element(window, window + 13, window + 27);
          out.at(static_cast<std::size_t>(x), static_cast<std::size_t>(y),
                 static_cast<std::size_t>(z)) = window[13];
        }
  });
  return out;
}

// -- threshold ---------------------------------------------------------------------

volume threshold(const volume& in, const kernel_step& step) {
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  double lower = step.lower.value_or(-1e300);
  double upper = step.upper.value_or(1e300);
  bool binarize = step.mode == "binarize";
  std::int16_t background = std::numeric_limits<std::int16_t>::min();
  if (!binarize) {
    if (step.background)
      background = in.stored(*step.background);
    else
      background = *std::min_element(in.voxels.begin(), in.voxels.end());
  }
  if (binarize) {
    out.slope = 1;
    out.intercept = 0;
  }
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.size(), 1 << 16), [&](auto range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i) {
      double v = in.value(in.voxels[i]);
      bool inside = v >= lower && v <= upper;
      out.voxels[i] = binarize ? (inside ? 1 : 0) : (inside ? in.voxels[i] : background);
    }
  });
  return out;
}

// -- window ------------------------------------------------------------------------

volume window(const volume& in, double center, double width) {
  volume out = shaped_like(in);
  out.voxels.resize(in.size());
  out.slope = 1;
  out.intercept = 0;
  out.bits_stored = 8;
  out.is_signed = false;
  // PS3.3 C.11.2.1.2.1: the linear function, output range 0..255.
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.size(), 1 << 16), [&](auto range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i) {
      double v = in.value(in.voxels[i]);
      double y;
      if (v <= center - 0.5 - (width - 1) / 2)
        y = 0;
      else if (v > center - 0.5 + (width - 1) / 2)
        y = 255;
      else
        y = ((v - (center - 0.5)) / (width - 1) + 0.5) * 255;
      out.voxels[i] = static_cast<std::int16_t>(std::lround(std::clamp(y, 0.0, 255.0)));
    }
  });
  return out;
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

volume_statistics statistics(const volume& in, double threshold_value, int bins) {
  volume_statistics s;
  s.voxels = in.size();
  s.threshold = threshold_value;
  if (in.voxels.empty())
    return s;
  struct partial {
    double sum = 0, sum_squares = 0;
    std::int16_t min = std::numeric_limits<std::int16_t>::max();
    std::int16_t max = std::numeric_limits<std::int16_t>::min();
    std::size_t above = 0;
  };
  std::int16_t stored_threshold = in.stored(threshold_value);
  // A stored value above the rounded threshold is above the threshold unless
  // rounding moved it; compare in real values at the boundary.
  auto is_above = [&](std::int16_t v) {
    return v > stored_threshold || (v == stored_threshold && in.value(v) > threshold_value);
  };
  auto total = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, in.size(), 1 << 16), partial{},
      [&](auto range, partial p) {
        for (std::size_t i = range.begin(); i != range.end(); ++i) {
          double v = in.voxels[i];
          p.sum += v;
          p.sum_squares += v * v;
          p.min = std::min(p.min, in.voxels[i]);
          p.max = std::max(p.max, in.voxels[i]);
          p.above += is_above(in.voxels[i]) ? 1 : 0;
        }
        return p;
      },
      [](partial a, const partial& b) {
        a.sum += b.sum;
        a.sum_squares += b.sum_squares;
        a.min = std::min(a.min, b.min);
        a.max = std::max(a.max, b.max);
        a.above += b.above;
        return a;
      });
  double n = static_cast<double>(in.size());
  double mean_stored = total.sum / n;
  double variance_stored = std::max(0.0, total.sum_squares / n - mean_stored * mean_stored);
  s.mean = mean_stored * in.slope + in.intercept;
  s.std_dev = std::sqrt(variance_stored) * std::abs(in.slope);
  s.min = in.value(in.slope >= 0 ? total.min : total.max);
  s.max = in.value(in.slope >= 0 ? total.max : total.min);
  s.voxels_above = total.above;
  s.volume_above_ml =
      static_cast<double>(total.above) * in.spacing[0] * in.spacing[1] * in.spacing[2] / 1000.0;
  // Histogram of real values, `bins` equal bins from min to max.
  s.bin_counts.assign(static_cast<std::size_t>(bins), 0);
  double width = (s.max - s.min) / bins;
  for (int b = 0; b <= bins; ++b)
    s.bin_edges.push_back(s.min + b * width);
  for (std::int16_t v : in.voxels) {
    double real = in.value(v);
    auto b = width > 0 ? static_cast<std::size_t>((real - s.min) / width) : 0;
    ++s.bin_counts[std::min(b, s.bin_counts.size() - 1)];
  }
  return s;
}

} // namespace dcmstreams
