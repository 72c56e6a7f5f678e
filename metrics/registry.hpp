#pragma once
// A small Prometheus metrics registry: counter, gauge and histogram families
// with labels, declared once with help text, and the text exposition format
// 0.0.4. prometheus-cpp is not packaged for Debian 12, so this is our own.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace dcmstreams::metrics {

enum class metric_type { counter, gauge, histogram };

/// A value that only goes up. Lock-free on the hot path.
class counter {
public:
  void increment(double amount = 1.0);
  /// Follows a total kept elsewhere (such as CPU time in /proc); a smaller
  /// reading is ignored, so the counter never goes back.
  void follow_total(double observed_total);
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

/// A value that goes up and down.
class gauge {
public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void increment(double amount = 1.0);
  void decrement(double amount = 1.0) { increment(-amount); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

/// Counts observations into fixed buckets (upper bounds, `+Inf` implied).
class histogram {
public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double value);

  struct snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts; // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  snapshot read() const;

private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> bucket_counts_; // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
  std::atomic<std::uint64_t> count_{0};
};

using label_values = std::vector<std::string>;

/// All children of one metric name that differ only by their label values.
template <class Metric> class family {
public:
  family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make_child)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        make_child_(std::move(make_child)) {}

  /// Returns the child for these label values, creating it on first use. The
  /// reference stays valid for the registry's lifetime, so hot paths keep it.
  Metric& with(const label_values& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  /// Calls `visit(labels, metric)` for every child, sorted by label values.
  template <class Visitor> void for_each(Visitor&& visit) const {
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto& [values, child] : children_)
      visit(values, *child);
  }

private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_child_;
  mutable std::mutex mutex_;
  std::map<label_values, std::unique_ptr<Metric>> children_;
};

/// Holds every family; renders them in the order they were declared.
class registry {
public:
  family<counter>& add_counter(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names = {});
  family<gauge>& add_gauge(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  family<histogram>& add_histogram(const std::string& name, const std::string& help,
                                   std::vector<double> upper_bounds,
                                   std::vector<std::string> label_names = {});

  /// Registers a function run before each exposition, to refresh gauges whose
  /// values are read on demand (queue depths, disk space, /proc).
  void add_collector(std::function<void()> collect);

  /// The text exposition format 0.0.4, as served at GET /metrics.
  std::string expose() const;

  static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
  struct entry {
    metric_type type;
    std::unique_ptr<family<counter>> counters;
    std::unique_ptr<family<gauge>> gauges;
    std::unique_ptr<family<histogram>> histograms;
    const std::string& name() const;
  };
  /// Throws std::invalid_argument for a bad or already declared name.
  void check_new_name(const std::string& name, const std::vector<std::string>& label_names) const;

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<entry>> entries_;
  std::vector<std::function<void()>> collectors_;
};

/// Bucket bounds growing by `factor` from `start`, `count` of them.
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
bool valid_metric_name(const std::string& name);
/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, no `__` prefix).
bool valid_label_name(const std::string& name);
/// Formats a sample value the way Prometheus parses it, whatever the locale.
std::string format_value(double value);
/// Escapes a label value: backslash, double quote and newline.
std::string escape_label_value(const std::string& value);

// -- template implementation ---------------------------------------------------

template <class Metric> Metric& family<Metric>::with(const label_values& values) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (values.size() != label_names_.size())
    throw std::invalid_argument("metric " + name_ + " takes " +
                                std::to_string(label_names_.size()) + " label values, got " +
                                std::to_string(values.size()));
  auto& slot = children_[values];
  if (!slot)
    slot = make_child_();
  return *slot;
}

} // namespace dcmstreams::metrics
