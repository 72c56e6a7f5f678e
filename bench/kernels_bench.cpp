// Kernel benchmarks on a 512x512x300 int16 volume (--quick: 256x256x100):
// time, GB/s (volume bytes read per second) and the ratio to a plain memcpy
// of the same volume measured in the same run, at 1 thread and at all
// threads (oneTBB arena size).

#include "pipeline/imaging/kernels.hpp"

#include <benchmark/benchmark.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <cstring>
#include <map>
#include <random>

using namespace dcmstreams;

namespace {

std::size_t nx = 512, ny = 512, nz = 300;

const volume& test_volume() {
  static volume v = [] {
    volume made;
    made.nx = nx;
    made.ny = ny;
    made.nz = nz;
    made.spacing = {0.7, 0.7, 1.0};
    made.intercept = -1024;
    made.voxels.resize(made.size());
    std::mt19937 random{42};
    std::uniform_int_distribution<int> values{0, 3000};
    for (auto& voxel : made.voxels)
      voxel = static_cast<std::int16_t>(values(random));
    return made;
  }();
  return v;
}

std::size_t volume_bytes() {
  return test_volume().size() * sizeof(std::int16_t);
}

// memcpy bytes/s per thread count, measured first in the run.
std::map<int, double>& memcpy_rate() {
  static std::map<int, double> rates;
  return rates;
}

void report(benchmark::State& state, int threads) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * volume_bytes()));
  state.counters["threads"] = threads;
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * volume_bytes()), benchmark::Counter::kIsRate);
}

template <class Kernel> void run_kernel(benchmark::State& state, Kernel kernel) {
  int threads = static_cast<int>(state.range(0));
  tbb::global_control limit{tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads)};
  const auto& in = test_volume();
  for (auto _ : state) {
    auto out = kernel(in);
    benchmark::DoNotOptimize(out.voxels.data());
  }
  report(state, threads);
}

// For kernels that work in place: each call gets a fresh copy of the volume,
// made outside the timed part, as a job's chain hands its volume on.
template <class Kernel> void run_in_place(benchmark::State& state, Kernel kernel) {
  int threads = static_cast<int>(state.range(0));
  tbb::global_control limit{tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads)};
  for (auto _ : state) {
    state.PauseTiming();
    volume copy = test_volume();
    state.ResumeTiming();
    auto out = kernel(std::move(copy));
    benchmark::DoNotOptimize(out.voxels.data());
  }
  report(state, threads);
}

void bm_memcpy(benchmark::State& state) {
  int threads = static_cast<int>(state.range(0));
  const auto& in = test_volume();
  std::vector<std::int16_t> out(in.size());
  tbb::global_control limit{tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads)};
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    std::memcpy(out.data(), in.voxels.data(), volume_bytes());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  memcpy_rate()[threads] = static_cast<double>(state.iterations() * volume_bytes()) / seconds;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * volume_bytes()));
  state.counters["threads"] = threads;
  state.counters["bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * volume_bytes()), benchmark::Counter::kIsRate);
}

kernel_step step(const char* json) {
  return *parse_kernel_step(std::string_view{json}, "bench");
}

void bm_gaussian(benchmark::State& s) {
  run_kernel(s, [](const volume& v) { return gaussian(v, 1.0); });
}
// A wide kernel (sigma 4 mm: 5.7 voxels in-plane, 4 along z): the exact
// convolution's cost grows with sigma, the recursive filter's does not.
void bm_gaussian_4mm_exact(benchmark::State& s) {
  run_kernel(s, [](const volume& v) { return gaussian(v, 4.0); });
}
void bm_gaussian_4mm_recursive(benchmark::State& s) {
  run_kernel(s,
             [](const volume& v) { return gaussian(v, 4.0, nullptr, gaussian_method::recursive); });
}
void bm_median(benchmark::State& s) {
  run_kernel(s, [](const volume& v) { return median3(v); });
}
void bm_threshold(benchmark::State& s) {
  static auto t =
      step(R"({"kernel": "threshold", "lower": 0, "upper": 1000, "background": -1024})");
  run_in_place(s, [](volume v) { return threshold(std::move(v), t); });
}
void bm_window(benchmark::State& s) {
  run_in_place(s, [](volume v) { return window(std::move(v), 40, 400); });
}
void bm_mip(benchmark::State& s) {
  run_kernel(s, [](const volume& v) { return mip(v, 10); });
}
void bm_resample(benchmark::State& s) {
  static auto r = step(R"({"kernel": "resample", "factor": 0.5})");
  run_kernel(s, [](const volume& v) { return resample(v, r); });
}
void bm_stats(benchmark::State& s) {
  run_kernel(s, [](const volume& v) {
    auto result = statistics(v, 300, 64);
    volume holder;
    holder.voxels.push_back(static_cast<std::int16_t>(result.mean));
    return holder;
  });
}

// A gaussian, a mask and a window: one after the other, each over the
// whole volume, and with the two element-wise steps inside the gaussian's
// output loop (voxel_pass), as a stream runs them.
const kernel_step& chain_mask() {
  static auto t =
      step(R"({"kernel": "threshold", "lower": 0, "upper": 1000, "background": -1024})");
  return t;
}
void bm_gaussian_chain_apart(benchmark::State& s) {
  run_kernel(s, [](const volume& v) {
    return window(threshold(gaussian(v, 1.0), chain_mask()), 40, 400);
  });
}
void bm_gaussian_chain_fused(benchmark::State& s) {
  run_kernel(s, [](const volume& v) {
    kernel_step vo = step(R"({"kernel": "window", "center": 40, "width": 400})");
    voxel_pass then{v, {chain_mask(), vo}};
    return gaussian(v, 1.0, &then);
  });
}

void thread_counts(benchmark::internal::Benchmark* b) {
  int all = tbb::info::default_concurrency();
  b->Arg(1);
  if (all > 1)
    b->Arg(all);
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK(bm_memcpy)->Apply(thread_counts);
BENCHMARK(bm_threshold)->Apply(thread_counts);
BENCHMARK(bm_window)->Apply(thread_counts);
BENCHMARK(bm_mip)->Apply(thread_counts);
BENCHMARK(bm_stats)->Apply(thread_counts);
BENCHMARK(bm_gaussian)->Apply(thread_counts);
BENCHMARK(bm_gaussian_4mm_exact)->Apply(thread_counts);
BENCHMARK(bm_gaussian_4mm_recursive)->Apply(thread_counts);
BENCHMARK(bm_resample)->Apply(thread_counts);
BENCHMARK(bm_median)->Apply(thread_counts);
BENCHMARK(bm_gaussian_chain_apart)->Apply(thread_counts);
BENCHMARK(bm_gaussian_chain_fused)->Apply(thread_counts);

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      nx = ny = 256;
      nz = 100;
      continue;
    }
    args.push_back(argv[i]);
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
