#pragma once
// The ingest journal (DESIGN §6): where received data sets become durable.
//
// A C-STORE's bytes are appended as one record to a segment file that was
// written with zeros (or used) before, so writing into it changes no file
// metadata and fdatasync flushes only the data. One fdatasync covers every
// record that finished writing meanwhile, from every association (group
// commit, as PostgreSQL's WAL): an association waiting for its record either
// leads the next flush or is woken by it. Nothing per instance touches a
// folder on the C-STORE path.
//
// Records stay in the journal until their study completes: the intake then
// writes them out as files for the job, syncs the file system once, and
// appends a consumption record naming the jobs and every record they took.
// That record is the commit point: after a crash, a job creation whose
// consumption record is in the journal is finished, any other is undone and
// its instances are pending again. Records are released once the job is
// queued; a segment is recycled (rewritten header, a new sequence number)
// when it and every older segment hold no live record, so a consumption record
// never outlives the records it consumed on disk.
//
// Every record carries a CRC-32C over its header, origin and data; after a
// crash the scan of a segment stops at the first record that does not check
// (a record being written, never acknowledged, or an older generation's).
//
//   <data>/journal/segment-<n>.log   segments, a 4 KiB header then records
//
// Thread-safe: associations append and wait concurrently; the intake reads,
// consumes and releases.

#include "pipeline/foundation/error.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace dcmstreams {

/// Where a record sits: its segment's sequence number (never reused: a
/// recycled segment gets a new one) and its offset in that segment.
struct journal_ref {
  std::uint64_t sequence = 0; // 0: no record (an instance stored as a file)
  std::uint64_t offset = 0;

  explicit operator bool() const { return sequence != 0; }
  bool operator<(const journal_ref& other) const {
    return std::tie(sequence, offset) < std::tie(other.sequence, other.offset);
  }
  bool operator==(const journal_ref& other) const {
    return sequence == other.sequence && offset == other.offset;
  }
};

/// Who sent an instance and what it is, as its record keeps it.
struct journal_origin {
  std::string called_ae;
  std::string calling_ae;
  std::string peer;
  std::string study_uid;
  std::string sop_uid;
};

/// An appended record, to wait for with journal::wait_durable.
struct journal_ticket {
  journal_ref ref;
  std::uint64_t end = 0; // the record's end in the journal's running byte count
};

/// An instance record not consumed by any job.
struct journaled_instance {
  journal_ref ref;
  journal_origin origin;
  std::uint64_t bytes = 0; // of the data (the file as the job gets it)
};

/// A consumption record: the jobs of one completed study and every record
/// they took (including copies replaced by a later one).
struct journal_consumption {
  journal_ref ref;
  std::vector<std::int64_t> jobs;
  std::vector<journal_ref> consumed;
};

struct journal_settings {
  std::filesystem::path dir;
  /// Size of each segment.
  std::uint64_t segment_bytes = std::uint64_t{32} << 20;
  /// Largest data a record takes (at most a quarter of a segment); the
  /// listener stores larger data sets as files, where the metadata of a file
  /// costs little beside the data and no copy is made at study completion.
  std::uint64_t record_limit = std::uint64_t{1} << 20;
  /// Free segments kept for reuse; more are deleted.
  std::size_t kept_free_segments = 2;
};

class journal {
public:
  /// Opens (creating) the journal folder and scans every segment: the
  /// instances no job consumed and the consumption records are listed in
  /// recovered_consumptions() and pending_instances().
  static result<std::unique_ptr<journal>> open(journal_settings settings);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Largest data a record holds.
  std::uint64_t record_limit() const {
    return std::min(settings_.record_limit, settings_.segment_bytes / 4);
  }

  /// Appends the bytes of a received file (file meta header and data set).
  /// The record is written (in the page cache) on return; wait_durable makes
  /// it durable. Until released or consumed it is listed as pending.
  result<journal_ticket> append_instance(const journal_origin& origin, std::string_view data);
  /// One association appending to the journal. A flush about to start waits
  /// a moment (at most about one flush) for every writer that was active in
  /// the last few milliseconds and is not waiting yet, so that one flush
  /// serves them all (PostgreSQL's commit_delay with commit_siblings).
  class writer {
  public:
    /// A data set starts arriving.
    void active() {
      last_active_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                            std::memory_order_relaxed);
    }

  private:
    friend class journal;
    std::atomic<std::int64_t> last_active_ns_{0};
    std::atomic<bool> waiting_{false};
  };
  void attach(writer& w);
  void detach(writer& w);

  /// Returns once every record up to `ticket` is on stable storage, sharing
  /// one flush with every other waiter; fails if the disk refused the record.
  status wait_durable(const journal_ticket& ticket, writer* waiting = nullptr);
  /// The data of an instance record, checked against its CRC.
  result<std::string> read_instance(const journal_ref& ref) const;
  /// Appends a consumption record and, with `durable`, waits for it; then
  /// `consumed` are no longer pending. Returns the record's place.
  result<journal_ref> consume(const std::vector<std::int64_t>& jobs,
                              const std::vector<journal_ref>& consumed, bool durable);
  /// Records no longer needed (consumed and queued, or refused); segments
  /// holding none are recycled, oldest first.
  void release(const std::vector<journal_ref>& refs);

  /// Instance records appended or found at open that no job consumed, oldest first.
  std::vector<journaled_instance> pending_instances() const;
  /// Pending records of the same instance from the same sender as `origin`,
  /// older than `before`: copies a later one replaced. Reads only the records
  /// that are such copies, however many are pending.
  std::vector<journal_ref> older_pending_copies(const journal_origin& origin,
                                                const journal_ref& before) const;
  /// The consumption records found at open.
  const std::vector<journal_consumption>& recovered_consumptions() const {
    return recovered_consumptions_;
  }
  /// Whether the folder did not exist before open (data from an older version).
  bool created() const { return created_; }

  struct usage {
    std::size_t segments = 0;      // holding records
    std::size_t free_segments = 0; // ready for reuse
    std::size_t live_records = 0;
    std::uint64_t appended = 0; // records since open
    std::uint64_t flushes = 0;  // fdatasync calls since open
  };
  usage current_usage() const;

private:
  struct segment {
    std::filesystem::path path;
    int fd = -1;
    std::uint64_t size = 0;
    std::uint64_t sequence = 0; // 0: free
    std::uint64_t used = 0;     // next record's offset
    std::set<std::uint64_t> live;
    bool dirty = false;    // written since its last flush
    bool sealed = false;   // takes no more records
    bool in_flush = false; // a flush syncs it (outside the lock): not to be recycled meanwhile
    std::uint64_t synced = 0;
    std::uint64_t broken_at = UINT64_MAX; // records from here on were refused
  };
  struct in_flight {
    segment* seg;
    std::uint64_t offset;
  };

  explicit journal(journal_settings settings);
  status scan();
  /// Appends one record; a `pending` one (an instance, whose `meta` is its
  /// origin) is listed until consumed or released.
  result<journal_ticket> append(std::uint16_t kind, std::string_view meta, std::string_view data,
                                bool pending);
  void add_pending(const journal_ref& ref, std::string_view origin_meta);
  /// The origins of these records, those still in the journal, in order.
  std::vector<journaled_instance> read_pending(const std::vector<journal_ref>& refs) const;
  void drop_pending(const journal_ref& ref);
  /// A segment to append to, taking a prepared one (or making one now).
  result<segment*> next_segment(std::unique_lock<std::mutex>& lock);
  /// Makes segment-<number>.log: zero-filled (slow, ahead of need) or only allocated.
  result<std::unique_ptr<segment>> create_segment(std::uint64_t number, bool zero_fill);
  void recycle_oldest();
  std::uint64_t written_prefix() const;
  segment* find(std::uint64_t sequence) const;
  void prepare_loop();
  /// Writers active lately that have not appended and started waiting yet.
  std::size_t writers_expected() const;

  journal_settings settings_;
  bool created_ = false;
  std::vector<journal_consumption> recovered_consumptions_;

  mutable std::mutex mutex_;
  // Separate, so that an append wakes only the thread leading a flush (and
  // any waiting for an earlier record), not every association waiting for it.
  std::condition_variable progressed_; // a record was written, or a writer started waiting
  std::condition_variable flushed_;    // a flush ended
  std::vector<std::unique_ptr<segment>> active_; // by sequence; the last takes appends
  std::vector<std::unique_ptr<segment>> free_;   // written before, ready for reuse
  std::map<std::uint64_t, in_flight> writing_;   // by start in the running byte count
  // Only where each pending record is and a hash of its origin: the origin
  // itself is read back from the segment when asked, so memory stays small
  // (about 100 bytes an instance) with tens of thousands pending.
  std::map<journal_ref, std::size_t> pending_;
  std::unordered_multimap<std::size_t, journal_ref> pending_by_origin_;
  std::uint64_t last_sequence_ = 0;
  std::uint64_t next_file_ = 0;
  std::uint64_t appended_bytes_ = 0; // running byte count of all appends
  std::uint64_t durable_bytes_ = 0;
  bool flushing_ = false;
  // A recycle found a flush or a write on the oldest segment: the preparer
  // thread does it once that ends, never an association's thread.
  bool recycle_deferred_ = false;
  std::uint64_t appended_records_ = 0;
  std::uint64_t flushes_ = 0;
  std::vector<writer*> writers_;

  std::condition_variable prepare_wanted_;
  bool stopping_ = false;
  std::thread preparer_;
};

} // namespace dcmstreams
