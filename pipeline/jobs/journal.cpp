#include "pipeline/jobs/journal.hpp"

#include "pipeline/jobs/journal_format.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

using namespace journal_format;

constexpr const char* component = "journal";

// The longest a flush waits for other writers to append: about one flush of a
// cloud disk, so that waiting never costs more than the flush it saves.
constexpr auto max_commit_delay = std::chrono::microseconds(200);
// A writer active this recently is expected to append soon (an association
// in a stream of C-STOREs); one idle for longer is not waited for.
constexpr auto writer_recent = std::chrono::milliseconds(2);
} // namespace

journal::journal(journal_settings settings) : settings_(std::move(settings)) {}

result<std::unique_ptr<journal>> journal::open(journal_settings settings) {
  if (settings.segment_bytes < 16 * segment_header_bytes)
    return failure{ec::invalid_config,
                   "storage.journal_segment_mb: segments must be at least 64 KiB"};
  std::unique_ptr<journal> j{new journal(std::move(settings))};
  std::error_code error;
  j->created_ = !fs::exists(j->settings_.dir, error);
  if (auto problem = create_directories(j->settings_.dir, true))
    return *problem;
  if (auto problem = j->scan())
    return *problem;
  j->preparer_ = std::thread([raw = j.get()] { raw->prepare_loop(); });
  return j;
}

journal::~journal() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  prepare_wanted_.notify_all();
  if (preparer_.joinable())
    preparer_.join();
  for (auto* list : {&active_, &free_})
    for (auto& seg : *list)
      if (seg->fd >= 0)
        ::close(seg->fd);
}

status journal::scan() {
  std::error_code error;
  std::vector<std::unique_ptr<segment>> found;
  for (auto& entry : fs::directory_iterator(settings_.dir, error)) {
    auto name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      // A segment whose zero-filling was cut off: never used.
      fs::remove(entry.path(), error);
      continue;
    }
    auto number = segment_number(name);
    if (!number)
      continue;
    next_file_ = std::max(next_file_, *number + 1);
    auto seg = std::make_unique<segment>();
    seg->path = entry.path();
    seg->fd = ::open(seg->path.c_str(), O_RDWR | O_CLOEXEC);
    if (seg->fd < 0)
      return failure{ec::io_error, seg->path.string() + ": cannot open the journal segment: " +
                                       errno_text(errno) + "; check the data folder's permissions"};
    struct stat info {};
    ::fstat(seg->fd, &info);
    seg->size = static_cast<std::uint64_t>(info.st_size);
    std::string page(segment_header_bytes, '\0');
    if (seg->size >= segment_header_bytes && pread_fully(seg->fd, page.data(), page.size(), 0) == 0)
      seg->sequence = parse_segment_header(page);
    found.push_back(std::move(seg));
  }
  if (error)
    return failure{ec::io_error,
                   settings_.dir.string() + ": cannot list the journal: " + error.message()};
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a->sequence < b->sequence; });

  std::vector<journal_consumption> consumptions;
  for (auto& seg : found) {
    if (seg->sequence == 0 || seg->size < segment_header_bytes) {
      free_.push_back(std::move(seg));
      continue;
    }
    last_sequence_ = std::max(last_sequence_, seg->sequence);
    // What was found is kept as it is: new records go to a new segment.
    seg->sealed = true;
    std::uint64_t offset = segment_header_bytes;
    while (auto record = read_record(seg->fd, seg->sequence, offset, seg->size)) {
      journal_ref ref{seg->sequence, offset};
      if (record->kind == kind_instance) {
        if (parse_instance_meta(record->meta)) {
          seg->live.insert(offset);
          add_pending(ref, record->meta);
        }
      } else if (auto consumption = parse_consumption_meta(record->meta)) {
        seg->live.insert(offset);
        consumption->ref = ref;
        consumptions.push_back(std::move(*consumption));
      }
      offset += record->total;
    }
    seg->used = seg->synced = offset;
    active_.push_back(std::move(seg));
  }
  for (auto& consumption : consumptions)
    for (auto& ref : consumption.consumed)
      drop_pending(ref);
  recovered_consumptions_ = std::move(consumptions);
  return std::nullopt;
}

result<std::unique_ptr<journal::segment>> journal::create_segment(std::uint64_t number,
                                                                  bool zero_fill) {
  auto final_path = settings_.dir / ("segment-" + std::to_string(number) + ".log");
  auto temporary = settings_.dir / (".segment-" + std::to_string(number) + ".tmp");
  auto fail = [&](const std::string& what, int error) {
    ::unlink(temporary.c_str());
    return failure{ec::io_error, final_path.string() + ": cannot " + what +
                                     " a journal segment: " + errno_text(error)};
  };
  int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail("create", errno);
  auto seg = std::make_unique<segment>();
  seg->fd = fd;
  seg->size = settings_.segment_bytes;
  seg->path = final_path;
  int error = 0;
  if (zero_fill) {
    // Written blocks: a later write into them changes no metadata, so its
    // fdatasync flushes data alone.
    static const std::string zeros(1 << 20, '\0');
    for (std::uint64_t at = 0; at < seg->size && error == 0; at += zeros.size()) {
      iovec part{const_cast<char*>(zeros.data()),
                 static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), seg->size - at))};
      error = pwrite_fully(fd, {part}, at);
    }
  } else if (::posix_fallocate(fd, 0, static_cast<off_t>(seg->size)) != 0) {
    error = ENOSPC;
  }
  if (error == 0)
    error = write_segment_header(fd, 0);
  if (error != 0) {
    ::close(fd);
    return fail("write", error);
  }
  if (::rename(temporary.c_str(), final_path.c_str()) != 0) {
    int saved = errno;
    ::close(fd);
    return fail("name", saved);
  }
  if (auto problem = sync_directory(settings_.dir)) {
    ::close(fd);
    return *problem;
  }
  return seg;
}

void journal::prepare_loop() {
  std::unique_lock lock(mutex_);
  // One try per wake: a recycle still in a flush's way is deferred again, and
  // that flush's end wakes this thread.
  bool may_recycle = true;
  while (!stopping_) {
    if (recycle_deferred_ && may_recycle) {
      recycle_deferred_ = false;
      may_recycle = false;
      lock.unlock();
      recycle_oldest();
      lock.lock();
      continue;
    }
    // One segment ahead, made once the one taking appends is half full:
    // zero-filling early would compete with ingest for the disk for nothing.
    bool needed = free_.empty() && (active_.empty() || active_.back()->sealed ||
                                    active_.back()->used > active_.back()->size / 2);
    if (!needed) {
      prepare_wanted_.wait(lock);
      may_recycle = true;
      continue;
    }
    auto number = next_file_++;
    lock.unlock();
    auto made = create_segment(number, true);
    lock.lock();
    if (made) {
      free_.push_back(std::move(*made));
      continue;
    }
    log::warning(component, made.error().message + "; trying again in 5 s");
    prepare_wanted_.wait_for(lock, std::chrono::seconds(5));
    may_recycle = true;
  }
}

result<journal::segment*> journal::next_segment(std::unique_lock<std::mutex>&) {
  std::unique_ptr<segment> seg;
  if (!free_.empty()) {
    seg = std::move(free_.back());
    free_.pop_back();
  } else {
    // None prepared: one with allocated but unwritten blocks, whose first
    // flushes also write metadata; the preparer makes the next one.
    auto made = create_segment(next_file_++, false);
    if (!made)
      return made.error();
    seg = std::move(*made);
  }
  prepare_wanted_.notify_one();
  seg->sequence = ++last_sequence_;
  seg->used = seg->synced = segment_header_bytes;
  seg->live.clear();
  seg->dirty = seg->sealed = false;
  seg->broken_at = UINT64_MAX;
  // Durable before any record in it: a scan must never read this segment's
  // older records under a header that was not rewritten.
  if (int error = write_segment_header(seg->fd, seg->sequence)) {
    auto message = seg->path.string() + ": cannot start a journal segment: " + errno_text(error);
    ::close(seg->fd);
    return failure{ec::io_error, message};
  }
  active_.push_back(std::move(seg));
  return active_.back().get();
}

journal::segment* journal::find(std::uint64_t sequence) const {
  auto it = std::lower_bound(active_.begin(), active_.end(), sequence,
                             [](auto& seg, std::uint64_t s) { return seg->sequence < s; });
  return it != active_.end() && (*it)->sequence == sequence ? it->get() : nullptr;
}

std::uint64_t journal::written_prefix() const {
  return writing_.empty() ? appended_bytes_ : writing_.begin()->first;
}

result<journal_ticket> journal::append(std::uint16_t kind, std::string_view meta,
                                       std::string_view data, bool pending) {
  std::uint64_t total = record_header_bytes + meta.size() + data.size();
  if (data.size() > record_limit() || total > settings_.segment_bytes - segment_header_bytes)
    return failure{ec::invalid_argument, "a journal record of " + std::to_string(total) +
                                             " bytes is larger than a segment allows"};
  std::unique_lock lock(mutex_);
  segment* seg = active_.empty() ? nullptr : active_.back().get();
  if (!seg || seg->sealed || seg->used + total > seg->size) {
    if (seg)
      seg->sealed = true;
    auto next = next_segment(lock);
    if (!next)
      return next.error();
    seg = *next;
  }
  journal_ticket ticket;
  ticket.ref = {seg->sequence, seg->used};
  std::uint64_t start = appended_bytes_;
  ticket.end = start + total;
  bool half_full = seg->used <= seg->size / 2 && seg->used + total > seg->size / 2;
  seg->used += total;
  appended_bytes_ += total;
  if (half_full)
    prepare_wanted_.notify_one();
  writing_[start] = in_flight{seg, ticket.ref.offset};
  seg->live.insert(ticket.ref.offset);
  if (pending)
    add_pending(ticket.ref, meta);
  int fd = seg->fd;
  lock.unlock();

  // The CRC and the copy into the page cache run beside other associations'.
  auto header = record_header(kind, ticket.ref.sequence, meta, data);
  int error = pwrite_fully(fd,
                           {iovec{header.data(), header.size()},
                            iovec{const_cast<char*>(meta.data()), meta.size()},
                            iovec{const_cast<char*>(data.data()), data.size()}},
                           ticket.ref.offset);

  lock.lock();
  writing_.erase(start);
  ++appended_records_;
  if (error != 0) {
    // Later records of this segment may sit behind a hole now: none of them
    // counts, and new ones go to another segment.
    seg->broken_at = std::min(seg->broken_at, ticket.ref.offset);
    seg->sealed = true;
    seg->live.erase(ticket.ref.offset);
    drop_pending(ticket.ref);
  } else {
    seg->dirty = true;
  }
  progressed_.notify_all();
  if (error != 0)
    return failure{ec::io_error,
                   seg->path.string() + ": cannot write to the journal: " + errno_text(error)};
  return ticket;
}

result<journal_ticket> journal::append_instance(const journal_origin& origin,
                                                std::string_view data) {
  return append(kind_instance, instance_meta(origin), data, true);
}

void journal::attach(writer& w) {
  std::lock_guard lock(mutex_);
  writers_.push_back(&w);
}

void journal::detach(writer& w) {
  std::lock_guard lock(mutex_);
  writers_.erase(std::remove(writers_.begin(), writers_.end(), &w), writers_.end());
  progressed_.notify_all();
}

std::size_t journal::writers_expected() const {
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto recent =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(writer_recent).count();
  std::size_t expected = 0;
  for (auto* w : writers_)
    if (!w->waiting_.load(std::memory_order_relaxed) &&
        now - w->last_active_ns_.load(std::memory_order_relaxed) < recent)
      ++expected;
  return expected;
}

status journal::wait_durable(const journal_ticket& ticket, writer* waiting) {
  std::unique_lock lock(mutex_);
  struct waiting_flag {
    writer* w;
    ~waiting_flag() {
      if (w)
        w->waiting_.store(false, std::memory_order_relaxed);
    }
  } flag{waiting};
  if (waiting) {
    waiting->waiting_.store(true, std::memory_order_relaxed);
    progressed_.notify_all(); // a flush may be waiting for this writer
  }
  for (;;) {
    auto* seg = find(ticket.ref.sequence);
    if (!seg || seg->broken_at <= ticket.ref.offset)
      return failure{ec::io_error, "the disk did not keep a journal record in " +
                                       (seg ? seg->path.string() : settings_.dir.string()) +
                                       " (see the log for the write or flush that failed)"};
    if (durable_bytes_ >= ticket.end)
      return std::nullopt;
    if (flushing_) {
      flushed_.wait(lock);
      continue;
    }
    if (written_prefix() < ticket.end) {
      progressed_.wait(lock); // an earlier record is still being written
      continue;
    }
    // Lead one flush for everything written so far, once the other writers
    // active right now appended theirs (or a moment passed).
    flushing_ = true;
    auto delay_until = std::chrono::steady_clock::now() + max_commit_delay;
    while (writers_expected() > 0 &&
           progressed_.wait_until(lock, delay_until) != std::cv_status::timeout) {
    }
    auto target = written_prefix();
    struct to_flush {
      segment* seg;
      std::uint64_t covered; // offsets below this were written before the flush
      int error = 0;
    };
    std::vector<to_flush> dirty;
    for (auto& s : active_) {
      if (!s->dirty)
        continue;
      s->dirty = false;
      s->in_flush = true;
      std::uint64_t covered = s->used;
      for (auto& [start, writing] : writing_)
        if (writing.seg == s.get())
          covered = std::min(covered, writing.offset);
      dirty.push_back({s.get(), covered});
    }
    lock.unlock();
    for (auto& flush : dirty)
      if (::fdatasync(flush.seg->fd) != 0)
        flush.error = errno;
    lock.lock();
    ++flushes_;
    for (auto& flush : dirty) {
      flush.seg->in_flush = false;
      if (flush.error == 0) {
        flush.seg->synced = std::max(flush.seg->synced, flush.covered);
        continue;
      }
      // What the flush did not keep is unknown (the page cache may have
      // dropped it): refuse every record it covered.
      log::error(component, flush.seg->path.string() +
                                ": cannot flush the journal: " + errno_text(flush.error) +
                                "; the instances waiting on it are refused (the senders may send "
                                "them again)");
      flush.seg->broken_at = std::min(flush.seg->broken_at, flush.seg->synced);
      flush.seg->sealed = true;
    }
    durable_bytes_ = std::max(durable_bytes_, target);
    flushing_ = false;
    flushed_.notify_all();
    if (recycle_deferred_)
      prepare_wanted_.notify_one();
  }
}

result<std::string> journal::read_instance(const journal_ref& ref) const {
  int fd = -1;
  std::uint64_t size = 0;
  std::string where;
  {
    std::lock_guard lock(mutex_);
    auto* seg = find(ref.sequence);
    if (!seg || !seg->live.count(ref.offset))
      return failure{ec::not_found, "journal record " + std::to_string(ref.sequence) + ":" +
                                        std::to_string(ref.offset) + " is gone"};
    fd = seg->fd;
    size = seg->size;
    where = seg->path.string();
  }
  auto record = read_record(fd, ref.sequence, ref.offset, size);
  if (!record || record->kind != kind_instance)
    return failure{ec::io_error, where + ": the record at " + std::to_string(ref.offset) +
                                     " does not check (CRC); the disk changed it"};
  return std::move(record->data);
}

result<journal_ref> journal::consume(const std::vector<std::int64_t>& jobs,
                                     const std::vector<journal_ref>& consumed, bool durable) {
  auto ticket = append(kind_consumption, consumption_meta(jobs, consumed), {}, false);
  if (!ticket)
    return ticket.error();
  if (durable)
    if (auto problem = wait_durable(*ticket)) {
      release({ticket->ref});
      return *problem;
    }
  std::lock_guard lock(mutex_);
  for (auto& ref : consumed)
    drop_pending(ref);
  return ticket->ref;
}

void journal::release(const std::vector<journal_ref>& refs) {
  {
    std::lock_guard lock(mutex_);
    for (auto& ref : refs) {
      if (auto* seg = find(ref.sequence))
        seg->live.erase(ref.offset);
      drop_pending(ref);
    }
  }
  recycle_oldest();
}

void journal::recycle_oldest() {
  for (;;) {
    std::unique_ptr<segment> seg;
    {
      std::lock_guard lock(mutex_);
      // Oldest first, so that a consumption record is never gone from disk
      // while a record it consumed is still there; never the segment taking
      // appends, nor one a flush or a write is working on (the flush that
      // holds it hands the recycle to the preparer when it ends).
      if (active_.size() < 2 || !active_.front()->live.empty())
        return;
      bool busy = active_.front()->in_flush;
      for (auto& [start, writing] : writing_)
        busy |= writing.seg == active_.front().get();
      if (busy) {
        recycle_deferred_ = true;
        return;
      }
      seg = std::move(active_.front());
      active_.erase(active_.begin());
    }
    // Marked free on disk before anything newer can be recycled.
    int error = write_segment_header(seg->fd, 0);
    std::lock_guard lock(mutex_);
    if (error != 0) {
      log::warning(component, seg->path.string() + ": cannot mark the segment free: " +
                                  errno_text(error) + "; it is no longer used");
      ::close(seg->fd);
      continue;
    }
    seg->sequence = 0;
    if (free_.size() < settings_.kept_free_segments) {
      free_.push_back(std::move(seg));
      continue;
    }
    ::close(seg->fd);
    ::unlink(seg->path.c_str());
  }
}

std::vector<journaled_instance> journal::read_pending(const std::vector<journal_ref>& refs) const {
  struct where {
    journal_ref ref;
    int fd;
    std::uint64_t size;
  };
  std::vector<where> places;
  {
    std::lock_guard lock(mutex_);
    for (auto& ref : refs)
      if (auto* seg = find(ref.sequence))
        places.push_back({ref, seg->fd, seg->size});
  }
  // Read outside the lock: appends and flushes go on meanwhile.
  std::vector<journaled_instance> found;
  found.reserve(places.size());
  for (auto& place : places)
    if (auto origin = read_origin(place.fd, place.ref, place.size))
      found.push_back(std::move(*origin));
  return found;
}

std::vector<journaled_instance> journal::pending_instances() const {
  std::vector<journal_ref> refs;
  {
    std::lock_guard lock(mutex_);
    refs.reserve(pending_.size());
    for (auto& [ref, origin_hash] : pending_)
      refs.push_back(ref);
  }
  return read_pending(refs);
}

std::vector<journal_ref> journal::older_pending_copies(const journal_origin& origin,
                                                       const journal_ref& before) const {
  auto meta = instance_meta(origin);
  std::vector<journal_ref> candidates;
  {
    std::lock_guard lock(mutex_);
    auto [first, last] = pending_by_origin_.equal_range(std::hash<std::string_view>{}(meta));
    for (auto it = first; it != last; ++it)
      if (it->second < before)
        candidates.push_back(it->second);
  }
  // A hash says "maybe": the record's own origin decides.
  std::vector<journal_ref> copies;
  for (auto& found : read_pending(candidates))
    if (instance_meta(found.origin) == meta)
      copies.push_back(found.ref);
  std::sort(copies.begin(), copies.end());
  return copies;
}

void journal::add_pending(const journal_ref& ref, std::string_view origin_meta) {
  auto origin_hash = std::hash<std::string_view>{}(origin_meta);
  if (pending_.emplace(ref, origin_hash).second)
    pending_by_origin_.emplace(origin_hash, ref);
}

void journal::drop_pending(const journal_ref& ref) {
  auto it = pending_.find(ref);
  if (it == pending_.end())
    return;
  auto [first, last] = pending_by_origin_.equal_range(it->second);
  for (auto same = first; same != last; ++same)
    if (same->second == ref) {
      pending_by_origin_.erase(same);
      break;
    }
  pending_.erase(it);
}

journal::usage journal::current_usage() const {
  std::lock_guard lock(mutex_);
  usage u;
  u.segments = active_.size();
  u.free_segments = free_.size();
  for (auto& seg : active_)
    u.live_records += seg->live.size();
  u.appended = appended_records_;
  u.flushes = flushes_;
  return u;
}

} // namespace dcmstreams
