#include "web/throughput_history.hpp"

#include "pipeline/foundation/files.hpp"

#include <cmath>

namespace dcmstreams::web {

namespace {

double total(const metrics::family<metrics::counter>& family) {
  double sum = 0;
  family.for_each(
      [&](const metrics::label_values&, const metrics::counter& c) { sum += c.value(); });
  return sum;
}

} // namespace

throughput_history::throughput_history(node_metrics* counters, std::filesystem::path file)
    : counters_(counters), file_(std::move(file)) {
  load();
  if (counters_)
    sampler_ = std::thread([this] { run(); });
}

throughput_history::~throughput_history() {
  stop();
}

void throughput_history::stop() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (sampler_.joinable())
    sampler_.join();
}

json::value throughput_history::json() {
  std::lock_guard<std::mutex> guard{mutex_};
  return json_of(samples_);
}

json::value throughput_history::json_of(const std::deque<sample>& samples) {
  // Counts of events: whole numbers, though the counters hold doubles.
  auto count = [](double n) { return std::llround(n); };
  auto list = json::value::array();
  for (auto& s : samples)
    list.push_back({{"at", iso8601(s.at)},
                    {"at_ms", s.at},
                    {"instances", count(s.instances)},
                    {"jobs", count(s.jobs)},
                    {"sends", count(s.sends)}});
  return {{"interval_s", interval.count()}, {"samples", std::move(list)}};
}

// The counters' totals so far (they start at zero with the process).
throughput_history::sample throughput_history::totals_now() const {
  return {now_ms(), total(counters_->instances_received), total(counters_->jobs_total),
          total(counters_->sends_total)};
}

// The samples of the last hour from before a restart.
void throughput_history::load() {
  auto doc = json::load_file(file_);
  if (!doc || !doc->is_object() || !doc->contains("samples") || !(*doc)["samples"].is_array())
    return;
  auto oldest = now_ms() - static_cast<epoch_ms>(kept * interval.count() * 1000);
  for (auto& element : (*doc)["samples"]) {
    if (!element.is_object())
      continue;
    auto at = element.value("at_ms", json::value{});
    if (!at.is_number_integer() || at.get<epoch_ms>() < oldest)
      continue;
    sample s;
    s.at = at.get<epoch_ms>();
    for (auto [key, value] : {std::pair{"instances", &s.instances}, std::pair{"jobs", &s.jobs},
                              std::pair{"sends", &s.sends}}) {
      auto count = element.value(key, json::value{});
      *value = count.is_number() ? count.get<double>() : 0;
    }
    samples_.push_back(s);
  }
}

void throughput_history::run() {
  std::unique_lock<std::mutex> lock{mutex_};
  sample last = totals_now();
  while (!stopping_) {
    wake_.wait_for(lock, interval, [this] { return stopping_; });
    if (stopping_)
      break;
    sample now = totals_now();
    samples_.push_back(
        {now.at, now.instances - last.instances, now.jobs - last.jobs, now.sends - last.sends});
    last = now;
    if (samples_.size() > kept)
      samples_.pop_front();
    // Not synced: losing the last seconds of a chart in a crash is fine.
    auto text = json::dump(json_of(samples_));
    lock.unlock();
    write_file_atomically(file_, text, false);
    lock.lock();
  }
}

} // namespace dcmstreams::web
