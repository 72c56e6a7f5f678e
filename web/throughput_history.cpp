#include "web/throughput_history.hpp"

#include "pipeline/foundation/log.hpp"

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

throughput_history::throughput_history(node_metrics* counters,
                                       const std::filesystem::path& database_file,
                                       const std::filesystem::path& old_file)
    : counters_(counters) {
  // Its own connection (WAL: the job store's writes do not wait for it);
  // not synced: losing the last seconds of a chart in a crash is fine.
  if (auto opened = database::open(database_file, false))
    db_ = std::move(*opened);
  else
    log::warning("web", "the throughput chart keeps no history across restarts: " +
                            opened.error().message);
  take_over(old_file);
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

namespace {

epoch_ms hour_ago() {
  return now_ms() - static_cast<epoch_ms>(throughput_history::kept *
                                          throughput_history::interval.count() * 1000);
}

} // namespace

// The JSON file of nodes before schema 6, once: its samples go into the
// database and the file goes.
void throughput_history::take_over(const std::filesystem::path& old_file) {
  std::error_code error;
  if (!db_ || !std::filesystem::exists(old_file, error))
    return;
  auto doc = json::load_file(old_file);
  if (doc && doc->is_object() && doc->contains("samples") && (*doc)["samples"].is_array())
    for (auto& element : (*doc)["samples"]) {
      if (!element.is_object())
        continue;
      auto at = element.value("at_ms", json::value{});
      if (!at.is_number_integer())
        continue;
      sample s;
      s.at = at.get<epoch_ms>();
      for (auto [key, value] : {std::pair{"instances", &s.instances}, std::pair{"jobs", &s.jobs},
                                std::pair{"sends", &s.sends}}) {
        auto count = element.value(key, json::value{});
        *value = count.is_number() ? count.get<double>() : 0;
      }
      if (auto problem = db_->record_throughput(s, hour_ago()))
        return log::warning("web",
                            "cannot take over " + old_file.string() + ": " + problem->message);
    }
  std::filesystem::remove(old_file, error);
}

// The samples of the last hour from before a restart.
void throughput_history::load() {
  if (!db_)
    return;
  auto kept_samples = db_->throughput_since(hour_ago());
  if (!kept_samples) {
    log::warning("web", "cannot read the throughput history: " + kept_samples.error().message);
    return;
  }
  samples_.assign(kept_samples->begin(), kept_samples->end());
}

void throughput_history::run() {
  std::unique_lock<std::mutex> lock{mutex_};
  sample last = totals_now();
  while (!stopping_) {
    wake_.wait_for(lock, interval, [this] { return stopping_; });
    if (stopping_)
      break;
    sample now = totals_now();
    sample counted{now.at, now.instances - last.instances, now.jobs - last.jobs,
                   now.sends - last.sends};
    samples_.push_back(counted);
    last = now;
    if (samples_.size() > kept)
      samples_.pop_front();
    if (!db_)
      continue;
    lock.unlock();
    if (auto problem = db_->record_throughput(counted, hour_ago()))
      log::warning("web", "cannot keep the throughput history: " + problem->message);
    lock.lock();
  }
}

} // namespace dcmstreams::web
