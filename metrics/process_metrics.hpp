#pragma once
// The standard process_* metrics every Prometheus client exports, read from
// /proc/self on each scrape.

#include "metrics/registry.hpp"

namespace dcmstreams::metrics {

/// Declares process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds and
/// process_start_time_seconds, refreshed by a collector.
void register_process_metrics(registry& reg);

/// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
double peak_resident_bytes();

} // namespace dcmstreams::metrics
