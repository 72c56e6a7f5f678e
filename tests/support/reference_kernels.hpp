#pragma once
// Straightforward implementations of the kernels, one voxel at a time and
// without TBB, to check the parallel ones against.

#include "pipeline/imaging/kernels.hpp"

#include <algorithm>
#include <cmath>

namespace dcmstreams::reference {

inline long clamp_index(long i, std::size_t n) {
  return std::clamp(i, 0L, static_cast<long>(n) - 1);
}

inline std::vector<double> weights(double sigma_voxels) {
  int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma_voxels)));
  std::vector<double> w;
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    w.push_back(std::exp(-0.5 * i * i / (sigma_voxels * sigma_voxels)));
    sum += w.back();
  }
  for (auto& v : w)
    v /= sum;
  return w;
}

// The full 3-D convolution with the product kernel, borders repeating the edge.
inline volume gaussian(const volume& in, double sigma_mm) {
  std::vector<double> w[3];
  for (int a = 0; a < 3; ++a) {
    double s = sigma_mm / in.spacing[a];
    std::size_t n = a == 0 ? in.nx : a == 1 ? in.ny : in.nz;
    w[a] = (s > 0.1 && n > 1) ? weights(s) : std::vector<double>{1.0};
  }
  volume out = in;
  long rx = static_cast<long>(w[0].size() / 2), ry = static_cast<long>(w[1].size() / 2),
       rz = static_cast<long>(w[2].size() / 2);
  for (std::size_t z = 0; z < in.nz; ++z)
    for (std::size_t y = 0; y < in.ny; ++y)
      for (std::size_t x = 0; x < in.nx; ++x) {
        double sum = 0;
        for (long k = -rz; k <= rz; ++k)
          for (long j = -ry; j <= ry; ++j)
            for (long i = -rx; i <= rx; ++i)
              sum += w[2][static_cast<std::size_t>(k + rz)] *
                     w[1][static_cast<std::size_t>(j + ry)] *
                     w[0][static_cast<std::size_t>(i + rx)] *
                     in.at(static_cast<std::size_t>(clamp_index(static_cast<long>(x) + i, in.nx)),
                           static_cast<std::size_t>(clamp_index(static_cast<long>(y) + j, in.ny)),
                           static_cast<std::size_t>(clamp_index(static_cast<long>(z) + k, in.nz)));
        out.at(x, y, z) = static_cast<std::int16_t>(std::lround(sum));
      }
  return out;
}

inline volume median3(const volume& in) {
  volume out = in;
  for (std::size_t z = 0; z < in.nz; ++z)
    for (std::size_t y = 0; y < in.ny; ++y)
      for (std::size_t x = 0; x < in.nx; ++x) {
        std::vector<std::int16_t> values;
        for (long k = -1; k <= 1; ++k)
          for (long j = -1; j <= 1; ++j)
            for (long i = -1; i <= 1; ++i)
              values.push_back(
                  in.at(static_cast<std::size_t>(clamp_index(static_cast<long>(x) + i, in.nx)),
                        static_cast<std::size_t>(clamp_index(static_cast<long>(y) + j, in.ny)),
                        static_cast<std::size_t>(clamp_index(static_cast<long>(z) + k, in.nz))));
        std::sort(values.begin(), values.end());
        out.at(x, y, z) = values[13];
      }
  return out;
}

inline volume mip(const volume& in, std::size_t per_slab) {
  volume out = in;
  out.nz = (in.nz + per_slab - 1) / per_slab;
  out.voxels.assign(out.size(), 0);
  for (std::size_t k = 0; k < out.nz; ++k)
    for (std::size_t y = 0; y < in.ny; ++y)
      for (std::size_t x = 0; x < in.nx; ++x) {
        std::int16_t best = std::numeric_limits<std::int16_t>::min();
        for (std::size_t z = k * per_slab; z < std::min(in.nz, (k + 1) * per_slab); ++z)
          best = std::max(best, in.at(x, y, z));
        out.at(x, y, k) = best;
      }
  return out;
}

// Trilinear interpolation at a fractional index.
inline double sample(const volume& in, double fx, double fy, double fz) {
  auto x0 = static_cast<std::size_t>(std::floor(fx)), y0 = static_cast<std::size_t>(std::floor(fy)),
       z0 = static_cast<std::size_t>(std::floor(fz));
  double result = 0;
  for (int dz = 0; dz <= 1; ++dz)
    for (int dy = 0; dy <= 1; ++dy)
      for (int dx = 0; dx <= 1; ++dx) {
        std::size_t x = std::min(x0 + dx, in.nx - 1), y = std::min(y0 + dy, in.ny - 1),
                    z = std::min(z0 + dz, in.nz - 1);
        double w = (dx ? fx - x0 : 1 - (fx - x0)) * (dy ? fy - y0 : 1 - (fy - y0)) *
                   (dz ? fz - z0 : 1 - (fz - z0));
        result += w * in.at(x, y, z);
      }
  return result;
}

} // namespace dcmstreams::reference
