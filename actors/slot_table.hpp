#pragma once
// Where a job runs (docs/cluster.md): the head's own slots and those of the
// workers that joined. Stream mailboxes take a slot before a job starts and
// give it back when the run ends; the cluster head says who joined and who
// was lost. Shared between actors (a mutex inside), as the mailboxes ask for
// a slot in the middle of starting a job and need the answer at once.

#include "actors/actors.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

/// A slot taken for one run.
struct placement {
  std::string worker;        // empty: the head itself
  worker_actor handle;       // the worker's actor
  std::uint64_t epoch = 0;   // of the worker when the slot was taken
  std::uint64_t attempt = 0; // this run's number, unique while the head runs
};

class slot_table {
public:
  /// `head_slots`: jobs the head itself runs at a time (cluster.head_slots);
  /// `shared_data`: workers may see the data folder at the same path
  /// (cluster.shared_data).
  explicit slot_table(std::uint32_t head_slots, bool shared_data = false)
      : head_slots_(head_slots), shared_data_(shared_data) {}

  /// Whether runs offer workers the data folder itself (each worker checks
  /// that it sees the same folder, and else takes files in chunks).
  bool shared_data() const { return shared_data_; }

  /// A free slot, the least loaded first (the head on a tie, then the worker
  /// that got a run longest ago, so that work spreads); nothing when
  /// every slot is taken. `head_only` (a job that needs the node's secret or
  /// database) takes the head's, even past cluster.head_slots when that is 0.
  std::optional<placement> take(bool head_only);
  /// As take(); when every slot is taken, `wake` is kept and called once a
  /// slot is given back or a worker joins or is back (in the same lock as the
  /// refusal, so no slot that frees in between is missed): a job waiting for
  /// a slot starts the moment one frees instead of at the next poll.
  std::optional<placement> take_or_wait(bool head_only, std::function<void()> wake);
  /// Gives the slot back after the run ended (or was given up).
  void release(const placement& slot);
  /// Whether the worker of the slot is still the one that got the run: not
  /// lost since, not joined again with a new connection.
  bool alive(const placement& slot) const;

  /// A worker joined (or joined again): its slots count from now on.
  void joined(const std::string& name, const worker_actor& handle, std::uint32_t slots);
  /// A worker answers again after it was lost: it takes new runs; those it
  /// had were given up when it was lost.
  void back(const std::string& name);
  /// A worker was lost: its runs are given up (alive() says so) and it gets
  /// no more until it is back.
  void lost(const std::string& name);

  /// Runs on each worker now (for listings); "" is the head.
  std::map<std::string, std::uint32_t> taken() const;
  /// Whether any slot exists at all (head or a joined worker).
  bool any_slots() const;

private:
  std::optional<placement> take_locked(bool head_only);
  /// Calls (outside the lock) whoever waits for a slot; `lock` is released.
  void wake_waiters(std::unique_lock<std::mutex>& lock);

  struct worker_slots {
    worker_actor handle;
    std::uint32_t slots = 0;
    std::uint32_t taken = 0;
    std::uint64_t epoch = 0;
    std::uint64_t last_run = 0; // the attempt it got last
    bool joined = false;
  };
  mutable std::mutex mutex_;
  std::uint32_t head_slots_;
  const bool shared_data_;
  std::uint32_t head_taken_ = 0;
  std::uint64_t next_attempt_ = 1;
  std::map<std::string, worker_slots> workers_;
  std::vector<std::function<void()>> waiters_;
};

} // namespace dcmstreams
