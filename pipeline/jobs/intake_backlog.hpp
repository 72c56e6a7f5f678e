#pragma once
// Instances of completed studies waiting for their jobs to be made. Job
// creation writes every instance out of the journal and links it into a job;
// when ingest takes all the machine's time (many senders on few cores) it
// falls behind, and the studies waiting for it hold their journal records,
// their segments and their memory. Ingest waits for it instead: a sender's
// next response is delayed (a bounded time, below senders' DIMSE timeouts)
// while the backlog is above its limit, so senders slow to the pace job
// creation keeps and memory and the journal stay bounded.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace dcmstreams {

/// The longest one answer waits: well below senders' DIMSE timeouts (Orthanc's
/// DicomScuTimeout is 10 s by default), so a sender slows and never times out.
constexpr std::chrono::milliseconds ingest_wait_for_backlog{2000};

class intake_backlog {
public:
  /// `limit` 0: never waits.
  intake_backlog(std::uint64_t limit, std::chrono::milliseconds max_wait)
      : limit_(limit), max_wait_(max_wait) {}

  /// A completed study's instances went to job creation.
  void add(std::uint64_t instances);
  /// They are in jobs now, or back among the pending instances.
  void remove(std::uint64_t instances);
  std::uint64_t size() const;
  std::uint64_t limit() const { return limit_; }
  /// Above its limit: answers wait, and no study completes by its quiet period.
  bool behind() const;

  /// What a wait for room did: how long it waited, and whether it began or
  /// ended a stretch of waiting (to be logged once each, not per instance).
  struct wait_outcome {
    std::chrono::duration<double> waited{0};
    bool began_waiting = false;
    bool caught_up = false;
    std::uint64_t backlog = 0; // when it began or caught up
  };
  /// Waits while the backlog is above the limit, at most `max_wait`.
  wait_outcome wait_for_room();

private:
  const std::uint64_t limit_;
  const std::chrono::milliseconds max_wait_;
  mutable std::mutex mutex_;
  std::condition_variable room_;
  std::uint64_t size_ = 0;
  // A waiter found it above the limit, and none has found room since: the
  // stretch of waiting has begun (and was told).
  bool stretch_told_ = false;
};

} // namespace dcmstreams
