#include "pipeline/imaging/kernels.hpp"
#include "pipeline/imaging/median_network.hpp"

#include "tests/support/reference_kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <random>
#include <tuple>

using namespace dcmstreams;

namespace {

// A small volume with anisotropic spacing, an oblique origin and random values.
volume random_volume(std::size_t nx, std::size_t ny, std::size_t nz, unsigned seed = 7) {
  volume v;
  v.nx = nx;
  v.ny = ny;
  v.nz = nz;
  v.spacing = {0.8, 1.1, 2.5};
  v.origin = {-10, 20, 30};
  v.slope = 1;
  v.intercept = -1024;
  v.slice_thickness = 2.5;
  std::mt19937 random{seed};
  std::uniform_int_distribution<int> values{0, 3000};
  for (std::size_t i = 0; i < v.size(); ++i)
    v.voxels.push_back(static_cast<std::int16_t>(values(random)));
  return v;
}

void expect_close(const volume& a, const volume& b, int tolerance) {
  ASSERT_EQ(a.nx, b.nx);
  ASSERT_EQ(a.ny, b.ny);
  ASSERT_EQ(a.nz, b.nz);
  int worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a.voxels[i] - b.voxels[i]));
  EXPECT_LE(worst, tolerance);
}

kernel_step step(const std::string& json) {
  auto parsed = parse_kernel_step(json, "step");
  EXPECT_TRUE(parsed) << parsed.error().message;
  return *parsed;
}

} // namespace

TEST(kernels, gaussian_matches_the_full_3d_convolution) {
  auto in = random_volume(13, 11, 9);
  for (double sigma : {0.5, 1.0, 3.0}) {
    auto fast = gaussian(in, sigma);
    auto slow = reference::gaussian(in, sigma);
    expect_close(fast, slow, 1); // float against double rounding
  }
}

TEST(kernels, gaussian_matches_across_its_blocks_on_odd_sizes_and_one_slice) {
  // 75 rows and 23 planes cut into several blocks of rows and runs of
  // planes; 70 and 37 voxels a row leave lines that are not a multiple of
  // the vector width; a single slice has no neighbours along z.
  for (auto [nx, ny, nz] : {std::tuple{70, 75, 23}, std::tuple{37, 33, 1}}) {
    auto in = random_volume(nx, ny, nz, 11);
    for (double sigma : {0.7, 1.5}) {
      auto fast = gaussian(in, sigma);
      auto slow = reference::gaussian(in, sigma);
      SCOPED_TRACE(std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz) +
                   " sigma " + std::to_string(sigma));
      expect_close(fast, slow, 1);
    }
  }
}

namespace {

// A smooth image: a bright ball and a dimmer slab in a dark background.
volume phantom(std::size_t nx, std::size_t ny, std::size_t nz) {
  auto v = random_volume(nx, ny, nz);
  for (std::size_t z = 0; z < nz; ++z)
    for (std::size_t y = 0; y < ny; ++y)
      for (std::size_t x = 0; x < nx; ++x) {
        double dx = (x - nx / 2.0) * v.spacing[0], dy = (y - ny / 2.0) * v.spacing[1],
               dz = (z - nz / 2.0) * v.spacing[2];
        bool ball = dx * dx + dy * dy + dz * dz < 100, slab = y * v.spacing[1] < 8;
        v.at(x, y, z) = static_cast<std::int16_t>(ball ? 2024 : slab ? 1324 : 24);
      }
  return v;
}

} // namespace

TEST(kernels, a_gaussian_step_says_how_it_is_computed) {
  EXPECT_FALSE(step(R"({"kernel": "gaussian", "sigma_mm": 4})").recursive);
  auto recursive = step(R"({"kernel": "gaussian", "sigma_mm": 4, "method": "recursive"})");
  EXPECT_TRUE(recursive.recursive);
  EXPECT_EQ(recursive.describe(), "gaussian sigma 4 mm, recursive");
}

TEST(kernels, recursive_gaussians_stay_close_to_the_convolution) {
  // Spacing 0.8, 1.1 and 2.5 mm: sigma 4 mm is recursive along x and y and
  // 1.6 voxels of taps along z; 9 mm recursive along every axis.
  auto recursive = [](const volume& v, double sigma) {
    return gaussian(v, sigma, nullptr, gaussian_method::recursive);
  };
  for (auto [nx, ny, nz] : {std::tuple{31, 29, 11}, std::tuple{30, 2, 1}}) {
    for (double sigma : {4.0, 9.0}) {
      SCOPED_TRACE(std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz) +
                   " sigma " + std::to_string(sigma));
      auto noise = random_volume(nx, ny, nz, 17);
      // White noise of 0 to 3000: 0.5 % of that.
      expect_close(recursive(noise, sigma), reference::gaussian(noise, sigma), 15);
      // Edges 2000 high: 4 % of that.
      auto image = phantom(nx, ny, nz);
      expect_close(recursive(image, sigma), reference::gaussian(image, sigma), 80);
    }
  }
  auto constant = random_volume(20, 20, 6);
  std::fill(constant.voxels.begin(), constant.voxels.end(), -1234);
  for (auto v : recursive(constant, 12.0).voxels)
    ASSERT_EQ(v, -1234);
}

TEST(kernels, gaussian_keeps_a_constant_volume_and_its_geometry) {
  auto in = random_volume(8, 8, 8);
  std::fill(in.voxels.begin(), in.voxels.end(), 1234);
  auto out = gaussian(in, 2.0);
  for (auto v : out.voxels)
    EXPECT_EQ(v, 1234);
  EXPECT_EQ(out.spacing, in.spacing);
  EXPECT_EQ(out.origin, in.origin);
  EXPECT_EQ(out.intercept, in.intercept);
}

TEST(kernels, median_matches_the_reference) {
  // Rows shorter than one vector of 16, rows of several vectors and a
  // remainder, a single slice, a single row.
  for (auto [nx, ny, nz] :
       {std::tuple{10, 9, 7}, std::tuple{53, 20, 6}, std::tuple{40, 7, 1}, std::tuple{33, 1, 1}}) {
    auto in = random_volume(nx, ny, nz, 3);
    SCOPED_TRACE(std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz));
    expect_close(median3(in), reference::median3(in), 0);
    // Three values only: ties everywhere.
    for (auto& v : in.voxels)
      v = static_cast<std::int16_t>(v % 3);
    expect_close(median3(in), reference::median3(in), 0);
  }
}

namespace {
struct bits_and {
  std::uint64_t operator()(std::uint64_t a, std::uint64_t b) const { return a & b; }
};
struct bits_or {
  std::uint64_t operator()(std::uint64_t a, std::uint64_t b) const { return a | b; }
};
} // namespace

TEST(kernels, the_median_network_is_right_on_every_input_of_zeros_and_ones) {
  // Every one of the 2^27 inputs of zeros and ones, 64 at a time: input c is
  // lane c % 64 of word c / 64, and its value r is bit r of c. On zeros and
  // ones a minimum is AND and a maximum OR, and the median is 1 exactly when
  // 14 or more values are. A min/max network right on all of these is right
  // on every input (the 0-1 principle).
  std::uint64_t lane_bits[6] = {};
  std::uint64_t median_is_one[28] = {}; // by the number of ones among values 6-26
  for (unsigned lane = 0; lane < 64; ++lane) {
    for (unsigned r = 0; r < 6; ++r)
      lane_bits[r] |= std::uint64_t{(lane >> r) & 1u} << lane;
    for (unsigned ones = 0; ones < 28; ++ones)
      if (ones + static_cast<unsigned>(__builtin_popcount(lane)) >= 14)
        median_is_one[ones] |= std::uint64_t{1} << lane;
  }
  std::uint64_t wrong = 0;
  for (std::uint64_t word = 0; word < (std::uint64_t{1} << 21); ++word) {
    std::uint64_t columns[3][9];
    for (unsigned r = 0; r < 27; ++r)
      columns[r / 9][r % 9] =
          r < 6 ? lane_bits[r] : ((word >> (r - 6)) & 1 ? ~std::uint64_t{0} : 0);
    for (auto& column : columns)
      median_network::apply(median_network::sort9, column, bits_and{}, bits_or{});
    auto median = median_network::median_of_sorted_columns(columns[0], columns[1], columns[2],
                                                           bits_and{}, bits_or{});
    wrong |= median ^ median_is_one[__builtin_popcountll(word)];
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(kernels, threshold_masks_and_binarizes_in_real_values) {
  auto in = random_volume(9, 8, 6);
  auto mask = threshold(in, step(R"({"kernel": "threshold", "lower": 0, "upper": 1000})"));
  auto binary = threshold(in, step(R"({"kernel": "threshold", "lower": 0, "mode": "binarize"})"));
  auto lowest = *std::min_element(in.voxels.begin(), in.voxels.end());
  for (std::size_t i = 0; i < in.size(); ++i) {
    double real = in.voxels[i] - 1024.0;
    bool inside = real >= 0 && real <= 1000;
    EXPECT_EQ(mask.voxels[i], inside ? in.voxels[i] : lowest);
    EXPECT_EQ(binary.voxels[i], real >= 0 ? 1 : 0);
  }
  EXPECT_EQ(binary.intercept, 0);
  // Ranges at and beyond what int16 holds: the extremes stay inside, and a
  // range that no stored value reaches keeps nothing.
  volume edges = in;
  edges.slope = 1;
  edges.intercept = 0;
  edges.voxels.assign(edges.size(), 0);
  edges.voxels[0] = -32768;
  edges.voxels[1] = 32767;
  auto all = threshold(edges, step(R"({"kernel": "threshold", "lower": -40000, "upper": 40000,
                                        "mode": "binarize"})"));
  EXPECT_EQ(std::count(all.voxels.begin(), all.voxels.end(), 1), static_cast<long>(edges.size()));
  auto beyond = threshold(edges, step(R"({"kernel": "threshold", "lower": 40000,
                                           "background": -5})"));
  EXPECT_EQ(std::count(beyond.voxels.begin(), beyond.voxels.end(), -5),
            static_cast<long>(edges.size()));
  auto top =
      threshold(edges, step(R"({"kernel": "threshold", "lower": 32767, "mode": "binarize"})"));
  EXPECT_EQ(top.voxels[1], 1);
  EXPECT_EQ(std::count(top.voxels.begin(), top.voxels.end(), 1), 1);
}

TEST(kernels, window_follows_the_linear_voi_function) {
  auto in = random_volume(9, 8, 6);
  auto out = window(in, 40, 400);
  EXPECT_EQ(out.bits_stored, 8);
  for (std::size_t i = 0; i < in.size(); ++i) {
    double x = in.voxels[i] - 1024.0;
    double expected = x <= 40 - 0.5 - 199.5  ? 0
                      : x > 40 - 0.5 + 199.5 ? 255
                                             : ((x - 39.5) / 399 + 0.5) * 255;
    EXPECT_EQ(out.voxels[i], std::lround(expected)) << x;
  }
}

TEST(kernels, window_gives_the_linear_voi_function_for_every_stored_value) {
  // Whole-number parameters take the vectorized path (widths to 4096), any
  // others the table; both must be the function rounded half away from zero.
  volume every = random_volume(256, 256, 1);
  for (int s = -32768; s <= 32767; ++s)
    every.voxels[static_cast<std::size_t>(s + 32768)] = static_cast<std::int16_t>(s);
  struct case_t {
    double slope, intercept, center, width;
  };
  std::vector<case_t> cases{{1, -1024, 40, 400},   {1, -1024, -600, 1500}, {2, -3, 7, 2},
                            {1, 0, 0, 4096},       {-1, 100, 30, 4095},    {1, -1024, 40.5, 400},
                            {0.5, -1024, 40, 400}, {1, -1024, 300, 5000}};
  for (int width = 2; width <= 4096; width += 97)
    cases.push_back({1, -1024, width % 300 - 150.0, static_cast<double>(width)});
  for (auto c : cases) {
    every.slope = c.slope;
    every.intercept = c.intercept;
    auto out = window(every, c.center, c.width);
    int wrong = 0;
    for (int s = -32768; s <= 32767 && wrong < 3; ++s) {
      double v = s * c.slope + c.intercept;
      double y = v <= c.center - 0.5 - (c.width - 1) / 2 ? 0
                 : v > c.center - 0.5 + (c.width - 1) / 2
                     ? 255
                     : ((v - (c.center - 0.5)) / (c.width - 1) + 0.5) * 255;
      auto got = out.voxels[static_cast<std::size_t>(s + 32768)];
      if (got != std::lround(y)) {
        ++wrong;
        ADD_FAILURE() << "slope " << c.slope << " intercept " << c.intercept << " centre "
                      << c.center << " width " << c.width << ": stored " << s << " gave " << got
                      << ", not " << std::lround(y);
      }
    }
  }
}

TEST(kernels, threshold_and_window_inside_a_gaussian_or_median_give_what_they_give_after_it) {
  auto in = random_volume(53, 40, 9, 13);
  auto mask = step(R"({"kernel": "threshold", "lower": 200, "upper": 1500, "background": -1024})");
  auto binarize = step(R"({"kernel": "threshold", "lower": 300, "mode": "binarize"})");
  auto vo = step(R"({"kernel": "window", "center": 400, "width": 1200})");
  auto odd = step(R"({"kernel": "window", "center": 400.5, "width": 1200})"); // the table
  auto same = [](const volume& a, const volume& b) {
    EXPECT_EQ(a.voxels, b.voxels);
    EXPECT_EQ(a.slope, b.slope);
    EXPECT_EQ(a.intercept, b.intercept);
    EXPECT_EQ(a.bits_stored, b.bits_stored);
    EXPECT_EQ(a.is_signed, b.is_signed);
  };
  for (auto& chain : std::vector<std::vector<kernel_step>>{
           {mask}, {binarize}, {vo}, {mask, vo}, {mask, odd}, {binarize, mask}}) {
    ASSERT_TRUE(std::all_of(chain.begin(), chain.end(), voxel_pass::can_fuse));
    auto after = [&chain](volume v) {
      for (auto& s : chain)
        v = s.kernel == "window" ? window(std::move(v), s.center, s.width)
                                 : threshold(std::move(v), s);
      return v;
    };
    SCOPED_TRACE(chain.front().describe() + " then " + std::to_string(chain.size() - 1) + " more");
    voxel_pass pass{in, chain};
    same(gaussian(in, 1.5, &pass), after(gaussian(in, 1.5)));
    same(median3(in, &pass), after(median3(in)));
    same(run_voxel_pass(in, pass), after(in));
  }
  // Masking with the volume's own lowest value needs that value first.
  EXPECT_FALSE(voxel_pass::can_fuse(step(R"({"kernel": "threshold", "lower": 200})")));
  EXPECT_FALSE(voxel_pass::can_fuse(step(R"({"kernel": "median"})")));
}

TEST(kernels, mip_over_slabs_and_whole_volume) {
  auto in = random_volume(7, 6, 10);
  auto slabs = mip(in, 7.5); // 3 slices of 2.5 mm
  expect_close(slabs, reference::mip(in, 3), 0);
  EXPECT_EQ(slabs.nz, 4u);
  EXPECT_DOUBLE_EQ(slabs.spacing[2], 7.5);
  EXPECT_DOUBLE_EQ(slabs.origin[2], 30 + 2.5); // centre of the first slab
  auto whole = mip(in, 0);
  expect_close(whole, reference::mip(in, 10), 0);
  EXPECT_EQ(whole.nz, 1u);
}

TEST(kernels, resample_matches_trilinear_sampling) {
  auto in = random_volume(11, 9, 7);
  auto out = resample(in, step(R"({"kernel": "resample", "spacing_mm": 1.0})"));
  EXPECT_EQ(out.nx, 9u);  // 10 gaps x 0.8 mm = 8 mm -> 9 samples
  EXPECT_EQ(out.ny, 9u);  // 8 x 1.1 = 8.8 mm -> 9
  EXPECT_EQ(out.nz, 16u); // 6 x 2.5 = 15 mm -> 16
  EXPECT_EQ(out.spacing, (vec3{1, 1, 1}));
  for (std::size_t z = 0; z < out.nz; ++z)
    for (std::size_t y = 0; y < out.ny; ++y)
      for (std::size_t x = 0; x < out.nx; ++x) {
        double expected = reference::sample(in, x / 0.8, y / 1.1, z / 2.5);
        EXPECT_NEAR(out.at(x, y, z), expected, 0.5 + 1e-9);
      }
  auto doubled = resample(in, step(R"({"kernel": "resample", "factor": 2})"));
  EXPECT_EQ(doubled.nx, 21u);
  EXPECT_DOUBLE_EQ(doubled.spacing[0], 0.4);
}

TEST(kernels, resample_matches_trilinear_sampling_down_and_up_on_odd_sizes_and_one_slice) {
  for (auto [nx, ny, nz] : {std::tuple{37, 70, 5}, std::tuple{45, 33, 1}}) {
    auto in = random_volume(nx, ny, nz, 5);
    for (double factor : {0.5, 1.7}) {
      auto out =
          resample(in, step(R"({"kernel": "resample", "factor": )" + std::to_string(factor) + "}"));
      SCOPED_TRACE(std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz) +
                   " factor " + std::to_string(factor));
      ASSERT_EQ(out.nz, nz == 1 ? 1u : static_cast<std::size_t>((nz - 1) * factor + 1e-9) + 1);
      int wrong = 0;
      for (std::size_t z = 0; z < out.nz; ++z)
        for (std::size_t y = 0; y < out.ny; ++y)
          for (std::size_t x = 0; x < out.nx && wrong < 3; ++x) {
            double expected = reference::sample(in, x * out.spacing[0] / in.spacing[0],
                                                y * out.spacing[1] / in.spacing[1],
                                                z * out.spacing[2] / in.spacing[2]);
            if (std::abs(out.at(x, y, z) - expected) > 0.5 + 1e-9) {
              ++wrong;
              ADD_FAILURE() << "at " << x << "," << y << "," << z << ": " << out.at(x, y, z)
                            << ", not " << expected;
            }
          }
    }
  }
}

TEST(kernels, statistics_match_a_plain_loop) {
  auto in = random_volume(12, 10, 8);
  auto s = statistics(in, 500, 16);
  double sum = 0, squares = 0, lo = 1e9, hi = -1e9;
  std::size_t above = 0;
  for (auto v : in.voxels) {
    double real = v - 1024.0;
    sum += real;
    squares += real * real;
    lo = std::min(lo, real);
    hi = std::max(hi, real);
    above += real > 500;
  }
  double n = static_cast<double>(in.size());
  EXPECT_NEAR(s.mean, sum / n, 1e-6);
  EXPECT_NEAR(s.std_dev, std::sqrt(squares / n - (sum / n) * (sum / n)), 1e-6);
  EXPECT_EQ(s.min, lo);
  EXPECT_EQ(s.max, hi);
  EXPECT_EQ(s.voxels_above, above);
  EXPECT_NEAR(s.volume_above_ml, above * 0.8 * 1.1 * 2.5 / 1000, 1e-9);
  std::size_t counted = 0;
  for (auto c : s.bin_counts)
    counted += c;
  EXPECT_EQ(counted, in.size());
  EXPECT_EQ(s.bin_edges.size(), 17u);
}

TEST(kernels, parameters_are_checked_with_their_place) {
  for (auto [json, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"({"kernel": "gaussian", "sigma_mm": -1})", "step.sigma_mm: must be a number above 0"},
           {R"({"kernel": "gaussian", "sigma": 1})",
            "step.sigma: unknown key; did you mean \"sigma_mm\"?"},
           {R"({"kernel": "gaussian", "method": "fast"})",
            "step.method: must be \"exact\" or \"recursive\""},
           {R"({"kernel": "threshold"})", "needs \"lower\", \"upper\" or both"},
           {R"({"kernel": "threshold", "lower": 5, "upper": 1})", "must not be above \"upper\""},
           {R"({"kernel": "resample", "spacing_mm": 1, "factor": 2})", "exactly one of"},
           {R"({"kernel": "window", "width": 0})", "step.width: must be at least 1"},
           {R"({"kernel": "stats", "bins": 0})", "step.bins: must be between 1 and 4096"},
           {R"({"kernel": "sharpen"})", "unknown kernel \"sharpen\""}}) {
    auto parsed = parse_kernel_step(json, "step");
    ASSERT_FALSE(parsed) << json;
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos)
        << json << " -> " << parsed.error().message;
  }
}
