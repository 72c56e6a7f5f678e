#pragma once
// The median of a 3x3x3 neighbourhood as a fixed network of minima and
// maxima, generic over the value: int16 vectors in the kernel (sixteen voxels
// at a time), 64-bit masks in the test that checks it on every one of the
// 2^27 inputs of zeros and ones (a min/max network that is right on those is
// right on all inputs).
//
// The 27 values are nine columns of three: for each x offset, the nine values
// of the (dz, dy) rows. Each column of nine is sorted once (sort9) and serves
// the three voxels whose neighbourhood it is part of. With the three columns
// of a voxel sorted, sorting each rank's row of three makes a 9x3 matrix
// sorted along both; then the value at rank i of the row-sorted column j has
// at least (i + 1)(j + 1) values at or below it and (9 - i)(3 - j) at or
// above, so only 13 can be the 14th of 27: row minima of ranks 5-8, middles
// of 2-6, maxima of 0-3. Seven values lie below them all and seven above, so
// the median of 27 is the 7th of those 13 — three lists sorted already, two
// of which merge in nine compare-exchanges, and the 7th of two sorted lists
// is a minimum of five maxima. About 60 compare-exchanges per voxel (25 of
// them the column's sort) instead of the 200 of a selection over 27.

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace dcmstreams::median_network {

/// A list of (lower, upper) index pairs: after each, the lower index holds
/// the smaller value.
template <std::size_t Capacity> struct exchanges {
  std::array<std::pair<std::uint8_t, std::uint8_t>, Capacity> pairs{};
  std::size_t size = 0;
  constexpr void add(std::uint8_t lower, std::uint8_t upper) {
    pairs[size].first = lower;
    pairs[size].second = upper;
    ++size;
  }
};

/// Sorts nine values in 25 compare-exchanges (Floyd's network).
constexpr exchanges<25> make_sort9() {
  exchanges<25> n{};
  constexpr std::uint8_t layers[][2] = {{0, 3}, {1, 7}, {2, 5}, {4, 8}, {0, 7}, {2, 4}, {3, 8},
                                        {5, 6}, {0, 2}, {1, 3}, {4, 5}, {7, 8}, {1, 4}, {3, 6},
                                        {5, 7}, {0, 1}, {2, 4}, {3, 5}, {6, 8}, {2, 3}, {4, 5},
                                        {6, 7}, {1, 2}, {3, 4}, {5, 6}};
  for (auto& pair : layers)
    n.add(pair[0], pair[1]);
  return n;
}

/// Merges two sorted lists of four (0-3 and 4-7) in nine compare-exchanges
/// (Batcher's odd-even merge).
constexpr exchanges<9> make_merge4() {
  exchanges<9> n{};
  constexpr std::uint8_t pairs[][2] = {{0, 4}, {1, 5}, {2, 6}, {3, 7}, {2, 4},
                                       {3, 5}, {1, 2}, {3, 4}, {5, 6}};
  for (auto& pair : pairs)
    n.add(pair[0], pair[1]);
  return n;
}

/// Whether `network` sorts every input of nine zeros and ones, hence every
/// input (the 0-1 principle).
constexpr bool sorts_every_input(const exchanges<25>& network) {
  for (unsigned input = 0; input < 512; ++input) {
    unsigned v[9] = {};
    for (unsigned i = 0; i < 9; ++i)
      v[i] = (input >> i) & 1;
    for (std::size_t p = 0; p < network.size; ++p) {
      auto [i, j] = network.pairs[p];
      unsigned a = v[i], b = v[j];
      v[i] = a < b ? a : b;
      v[j] = a < b ? b : a;
    }
    for (unsigned i = 0; i + 1 < 9; ++i)
      if (v[i] > v[i + 1])
        return false;
  }
  return true;
}

inline constexpr exchanges<25> sort9 = make_sort9();
static_assert(sorts_every_input(sort9));
inline constexpr exchanges<9> merge4 = make_merge4();

/// Applies `network` to `v` in place; `low` and `high` are the minimum and
/// maximum of two values.
template <class T, std::size_t Capacity, class Low, class High>
__attribute__((always_inline)) inline void apply(const exchanges<Capacity>& network, T* v, Low low,
                                                 High high) {
#pragma GCC unroll 64
  for (std::size_t p = 0; p < network.size; ++p) {
    const auto [i, j] = network.pairs[p];
    const T a = v[i], b = v[j];
    v[i] = low(a, b);
    v[j] = high(a, b);
  }
}

/// The middle one of three values.
template <class T, class Low, class High>
__attribute__((always_inline)) inline T middle(T x, T y, T z, Low low, High high) {
  return high(low(x, y), low(high(x, y), z));
}

/// The median of the 27 values of three sorted columns of nine (ascending).
/// No lambdas here or in `low` and `high`: the kernel's loops are built for
/// several targets, and a lambda would be built for the default one only.
template <class T, class Low, class High>
__attribute__((always_inline)) inline T median_of_sorted_columns(const T* a, const T* b, const T* c,
                                                                 Low low, High high) {
  // The candidates are three sorted lists (the matrix is sorted along its
  // columns): row maxima of ranks 0-3 and minima of 5-8, merged into one list
  // of eight, and middles of ranks 2-6.
  T merged[8], middles[5];
#pragma GCC unroll 4
  for (std::size_t i = 0; i < 4; ++i) {
    merged[i] = high(high(a[i], b[i]), c[i]);
    merged[4 + i] = low(low(a[5 + i], b[5 + i]), c[5 + i]);
  }
#pragma GCC unroll 5
  for (std::size_t i = 0; i < 5; ++i)
    middles[i] = middle(a[2 + i], b[2 + i], c[2 + i], low, high);
  apply(merge4, merged, low, high);
  // The 7th smallest of two sorted lists: of every way to take s of the
  // merged and 7 - s of the middles, the least largest value taken.
  T median = merged[6];
#pragma GCC unroll 5
  for (std::size_t s = 2; s < 7; ++s)
    median = low(median, high(merged[s - 1], middles[6 - s]));
  return median;
}

} // namespace dcmstreams::median_network
