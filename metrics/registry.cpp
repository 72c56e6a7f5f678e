#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace dcmstreams::metrics {

namespace {

void atomic_add(std::atomic<double>& target, double amount) {
  double expected = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(expected, expected + amount, std::memory_order_relaxed))
    ;
}

const char* type_name(metric_type type) {
  switch (type) {
  case metric_type::counter:
    return "counter";
  case metric_type::gauge:
    return "gauge";
  case metric_type::histogram:
    return "histogram";
  }
  return "untyped";
}

// HELP text escapes only backslash and newline (exposition format 0.0.4).
std::string escape_help(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void write_labels(std::string& out, const std::vector<std::string>& names,
                  const label_values& values, const char* extra_name = nullptr,
                  const std::string& extra_value = {}) {
  if (names.empty() && !extra_name)
    return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first)
      out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (extra_name) {
    if (!first)
      out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void write_sample(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const label_values& values, double value, const char* extra_name = nullptr,
                  const std::string& extra_value = {}) {
  out += name;
  write_labels(out, names, values, extra_name, extra_value);
  out += ' ';
  out += format_value(value);
  out += '\n';
}

void check_names(const std::string& name, const std::vector<std::string>& label_names) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("invalid metric name '" + name + "'");
  for (auto& label : label_names)
    if (!valid_label_name(label) || label == "le")
      throw std::invalid_argument("invalid label name '" + label + "' for metric " + name);
}

} // namespace

void counter::increment(double amount) {
  if (amount < 0)
    throw std::invalid_argument("a counter cannot decrease");
  atomic_add(value_, amount);
}

void counter::follow_total(double observed_total) {
  double current = value_.load(std::memory_order_relaxed);
  while (observed_total > current &&
         !value_.compare_exchange_weak(current, observed_total, std::memory_order_relaxed))
    ;
}

void gauge::increment(double amount) {
  atomic_add(value_, amount);
}

histogram::histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      bucket_counts_(new std::atomic<std::uint64_t>[upper_bounds_.size() + 1]) {
  if (!std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()) ||
      std::adjacent_find(upper_bounds_.begin(), upper_bounds_.end()) != upper_bounds_.end())
    throw std::invalid_argument("histogram bucket bounds must increase strictly");
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i)
    bucket_counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double value) {
  auto bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  bucket_counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot result;
  result.upper_bounds = upper_bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += bucket_counts_[i].load(std::memory_order_relaxed);
    result.cumulative_counts.push_back(running);
  }
  result.sum = sum_.load(std::memory_order_relaxed);
  // The +Inf bucket and _count must agree, so both come from the bucket sum.
  result.count = running;
  return result;
}

const std::string& registry::entry::name() const {
  switch (type) {
  case metric_type::counter:
    return counters->name();
  case metric_type::gauge:
    return gauges->name();
  default:
    return histograms->name();
  }
}

void registry::check_new_name(const std::string& name,
                              const std::vector<std::string>& label_names) const {
  check_names(name, label_names);
  for (auto& existing : entries_)
    if (existing->name() == name)
      throw std::invalid_argument("metric " + name + " is declared twice");
}

family<counter>& registry::add_counter(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> guard{mutex_};
  check_new_name(name, label_names);
  auto added = std::make_unique<entry>();
  added->type = metric_type::counter;
  added->counters = std::make_unique<family<counter>>(name, help, std::move(label_names),
                                                      [] { return std::make_unique<counter>(); });
  return *entries_.emplace_back(std::move(added))->counters;
}

family<gauge>& registry::add_gauge(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> guard{mutex_};
  check_new_name(name, label_names);
  auto added = std::make_unique<entry>();
  added->type = metric_type::gauge;
  added->gauges = std::make_unique<family<gauge>>(name, help, std::move(label_names),
                                                  [] { return std::make_unique<gauge>(); });
  return *entries_.emplace_back(std::move(added))->gauges;
}

family<histogram>& registry::add_histogram(const std::string& name, const std::string& help,
                                           std::vector<double> upper_bounds,
                                           std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> guard{mutex_};
  check_new_name(name, label_names);
  histogram probe{upper_bounds}; // validates the bounds before anything is declared
  auto added = std::make_unique<entry>();
  added->type = metric_type::histogram;
  added->histograms =
      std::make_unique<family<histogram>>(name, help, std::move(label_names), [upper_bounds] {
        return std::make_unique<histogram>(upper_bounds);
      });
  return *entries_.emplace_back(std::move(added))->histograms;
}

void registry::add_collector(std::function<void()> collect) {
  std::lock_guard<std::mutex> guard{mutex_};
  collectors_.push_back(std::move(collect));
}

std::string registry::expose() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    collectors = collectors_;
  }
  for (auto& collect : collectors)
    collect();
  std::lock_guard<std::mutex> guard{mutex_};
  std::string out;
  out.reserve(4096);
  for (auto& e : entries_) {
    const std::string& name = e->name();
    out += "# HELP " + name + ' ';
    switch (e->type) {
    case metric_type::counter:
      out += escape_help(e->counters->help());
      break;
    case metric_type::gauge:
      out += escape_help(e->gauges->help());
      break;
    case metric_type::histogram:
      out += escape_help(e->histograms->help());
      break;
    }
    out += "\n# TYPE " + name + ' ' + type_name(e->type) + '\n';
    switch (e->type) {
    case metric_type::counter:
      e->counters->for_each([&](const label_values& values, const counter& c) {
        write_sample(out, name, e->counters->label_names(), values, c.value());
      });
      break;
    case metric_type::gauge:
      e->gauges->for_each([&](const label_values& values, const gauge& g) {
        write_sample(out, name, e->gauges->label_names(), values, g.value());
      });
      break;
    case metric_type::histogram: {
      auto& labels = e->histograms->label_names();
      e->histograms->for_each([&](const label_values& values, const histogram& h) {
        auto snap = h.read();
        for (std::size_t i = 0; i < snap.upper_bounds.size(); ++i)
          write_sample(out, name + "_bucket", labels, values,
                       static_cast<double>(snap.cumulative_counts[i]), "le",
                       format_value(snap.upper_bounds[i]));
        write_sample(out, name + "_bucket", labels, values,
                     static_cast<double>(snap.cumulative_counts.back()), "le", "+Inf");
        write_sample(out, name + "_sum", labels, values, snap.sum);
        write_sample(out, name + "_count", labels, values, static_cast<double>(snap.count));
      });
      break;
    }
    }
  }
  return out;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  std::vector<double> bounds;
  double bound = start;
  for (std::size_t i = 0; i < count; ++i, bound *= factor)
    bounds.push_back(bound);
  return bounds;
}

bool valid_metric_name(const std::string& name) {
  if (name.empty())
    return false;
  auto head = [](char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  };
  if (!head(name[0]))
    return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) {
    return head(c) || std::isdigit(static_cast<unsigned char>(c));
  });
}

bool valid_label_name(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0)
    return false;
  auto head = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
  if (!head(name[0]))
    return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) {
    return head(c) || std::isdigit(static_cast<unsigned char>(c));
  });
}

std::string format_value(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  // std::to_chars is locale-independent and gives the shortest exact form.
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec != std::errc{})
    return "NaN";
  return std::string(buffer, end);
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

} // namespace dcmstreams::metrics
