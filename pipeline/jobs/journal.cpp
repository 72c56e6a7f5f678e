#include "pipeline/jobs/journal.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

constexpr const char* component = "journal";

// A segment starts with one page: magic, sequence number, CRC of both.
constexpr std::uint64_t segment_header_bytes = 4096;
constexpr char segment_magic[8] = {'D', 'C', 'S', 'J', 'S', 'E', 'G', '1'};
// Each record: magic, kind, version, sequence, origin length, CRC, data length.
constexpr std::uint32_t record_magic = 0x4A534344; // "DCSJ"
constexpr std::size_t record_header_bytes = 32;
constexpr std::uint16_t kind_instance = 1;
constexpr std::uint16_t kind_consumption = 2;
constexpr std::uint16_t record_version = 1;
// The longest a flush waits for other writers to append: about one flush of a
// cloud disk, so that waiting never costs more than the flush it saves.
constexpr auto max_commit_delay = std::chrono::microseconds(200);
// A writer active this recently is expected to append soon (an association
// in a stream of C-STOREs); one idle for longer is not waited for.
constexpr auto writer_recent = std::chrono::milliseconds(2);
// Anything claiming more origin than this is not a record of ours.
constexpr std::uint32_t max_meta_bytes = 16 << 20;

// -- CRC-32C (Castagnoli), with the SSE4.2 instruction where the CPU has it.

struct crc_table {
  std::array<std::uint32_t, 256> entries{};
  crc_table() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      entries[i] = c;
    }
  }
};

std::uint32_t crc_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  static const crc_table table;
  while (n-- > 0)
    crc = table.entries[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc_sse42(std::uint32_t crc, const unsigned char* p,
                                                          std::size_t n) {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  crc = static_cast<std::uint32_t>(c);
  while (n-- > 0)
    crc = _mm_crc32_u8(crc, *p++);
  return crc;
}
#endif

/// Continues a CRC-32C (start with 0) over `data`.
std::uint32_t crc32c(std::uint32_t crc, std::string_view data) {
  auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  crc = hardware ? crc_sse42(crc, p, data.size()) : crc_portable(crc, p, data.size());
#else
  crc = crc_portable(crc, p, data.size());
#endif
  return ~crc;
}

// -- little-endian fields

template <class T> void put(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<char>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xFF));
}

template <class T> T get(const char* p) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return static_cast<T>(value);
}

/// Reads what put() wrote; `ok` turns false past the end.
class field_reader {
public:
  explicit field_reader(std::string_view data) : data_(data) {}
  template <class T> T number() {
    if (!ok || data_.size() - at_ < sizeof(T)) {
      ok = false;
      return T{};
    }
    auto value = get<T>(data_.data() + at_);
    at_ += sizeof(T);
    return value;
  }
  std::string text() {
    auto length = number<std::uint16_t>();
    if (!ok || data_.size() - at_ < length) {
      ok = false;
      return {};
    }
    std::string value{data_.substr(at_, length)};
    at_ += length;
    return value;
  }
  bool ok = true;

private:
  std::string_view data_;
  std::size_t at_ = 0;
};

void put_text(std::string& out, const std::string& text) {
  auto length = static_cast<std::uint16_t>(std::min<std::size_t>(text.size(), 0xFFFF));
  put(out, length);
  out.append(text, 0, length);
}

std::string record_header(std::uint16_t kind, std::uint64_t sequence, std::string_view meta,
                          std::string_view data) {
  std::string header;
  header.reserve(record_header_bytes);
  put(header, record_magic);
  put(header, kind);
  put(header, record_version);
  put(header, sequence);
  put(header, static_cast<std::uint32_t>(meta.size()));
  put(header, std::uint32_t{0}); // the CRC, filled in below
  put(header, static_cast<std::uint64_t>(data.size()));
  auto crc = crc32c(crc32c(crc32c(0, header), meta), data);
  for (std::size_t i = 0; i < 4; ++i)
    header[20 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  return header;
}

std::string segment_header(std::uint64_t sequence) {
  std::string header(segment_magic, sizeof segment_magic);
  put(header, sequence);
  put(header, crc32c(0, header));
  header.resize(segment_header_bytes, '\0');
  return header;
}

/// The sequence number in a segment's first page; 0 if it is free or not ours.
std::uint64_t parse_segment_header(std::string_view page) {
  if (page.size() < 20 || std::memcmp(page.data(), segment_magic, sizeof segment_magic) != 0)
    return 0;
  if (get<std::uint32_t>(page.data() + 16) != crc32c(0, page.substr(0, 16)))
    return 0;
  return get<std::uint64_t>(page.data() + 8);
}

int pwrite_fully(int fd, std::vector<iovec> parts, std::uint64_t offset) {
  std::size_t first = 0;
  while (first < parts.size()) {
    auto n = ::pwritev(fd, parts.data() + first, static_cast<int>(parts.size() - first),
                       static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    offset += static_cast<std::uint64_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (first < parts.size() && left >= parts[first].iov_len)
      left -= parts[first++].iov_len;
    if (first < parts.size()) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + left;
      parts[first].iov_len -= left;
    }
  }
  return 0;
}

int pread_fully(int fd, char* buffer, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    auto n = ::pread(fd, buffer, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO; // past the end: the segment is shorter than the record says
    buffer += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int write_segment_header(int fd, std::uint64_t sequence) {
  auto header = segment_header(sequence);
  iovec part{header.data(), header.size()};
  if (int error = pwrite_fully(fd, {part}, 0))
    return error;
  return ::fdatasync(fd) == 0 ? 0 : errno;
}

struct parsed_record {
  std::uint16_t kind = 0;
  std::uint64_t total = 0; // header, origin and data
  std::uint64_t data_bytes = 0;
  std::string meta;
  std::string data;
};

/// Reads the record at `offset` if it is a whole, checked record of segment
/// `sequence`; nothing otherwise (the end of what was written).
/// Reads the record at `offset` if it is one of segment `sequence`; nothing
/// otherwise (the end of what was written). A `whole` read takes the data too
/// and checks the CRC; otherwise only the header and origin are read (for a
/// record the scan at open or this process's own append already checked).
std::optional<parsed_record> read_record(int fd, std::uint64_t sequence, std::uint64_t offset,
                                         std::uint64_t segment_size, bool whole = true) {
  if (offset + record_header_bytes > segment_size)
    return std::nullopt;
  std::string header(record_header_bytes, '\0');
  if (pread_fully(fd, header.data(), header.size(), offset) != 0)
    return std::nullopt;
  if (get<std::uint32_t>(header.data()) != record_magic ||
      get<std::uint64_t>(header.data() + 8) != sequence)
    return std::nullopt;
  parsed_record record;
  record.kind = get<std::uint16_t>(header.data() + 4);
  auto meta_bytes = get<std::uint32_t>(header.data() + 16);
  auto crc = get<std::uint32_t>(header.data() + 20);
  record.data_bytes = get<std::uint64_t>(header.data() + 24);
  if ((record.kind != kind_instance && record.kind != kind_consumption) ||
      meta_bytes > max_meta_bytes || record.data_bytes > segment_size ||
      offset + record_header_bytes + meta_bytes + record.data_bytes > segment_size)
    return std::nullopt;
  record.total = record_header_bytes + meta_bytes + record.data_bytes;
  record.meta.resize(meta_bytes);
  if (pread_fully(fd, record.meta.data(), meta_bytes, offset + record_header_bytes) != 0)
    return std::nullopt;
  if (!whole)
    return record;
  record.data.resize(record.data_bytes);
  if (pread_fully(fd, record.data.data(), record.data_bytes,
                  offset + record_header_bytes + meta_bytes) != 0)
    return std::nullopt;
  std::memset(header.data() + 20, 0, 4);
  if (crc32c(crc32c(crc32c(0, header), record.meta), record.data) != crc)
    return std::nullopt;
  return record;
}

std::optional<journal_origin> parse_instance_meta(std::string_view meta);

/// The origin and data size of an instance record, from its header and origin alone.
std::optional<journaled_instance> read_origin(int fd, const journal_ref& ref,
                                              std::uint64_t segment_size) {
  auto record = read_record(fd, ref.sequence, ref.offset, segment_size, false);
  if (!record || record->kind != kind_instance)
    return std::nullopt;
  auto origin = parse_instance_meta(record->meta);
  if (!origin)
    return std::nullopt;
  return journaled_instance{ref, std::move(*origin), record->data_bytes};
}

std::string instance_meta(const journal_origin& origin) {
  std::string meta;
  for (auto* field :
       {&origin.called_ae, &origin.calling_ae, &origin.peer, &origin.study_uid, &origin.sop_uid})
    put_text(meta, *field);
  return meta;
}

std::optional<journal_origin> parse_instance_meta(std::string_view meta) {
  field_reader in{meta};
  journal_origin origin;
  for (auto* field :
       {&origin.called_ae, &origin.calling_ae, &origin.peer, &origin.study_uid, &origin.sop_uid})
    *field = in.text();
  return in.ok ? std::optional<journal_origin>{origin} : std::nullopt;
}

std::string consumption_meta(const std::vector<std::int64_t>& jobs,
                             const std::vector<journal_ref>& consumed) {
  std::string meta;
  put(meta, static_cast<std::uint32_t>(jobs.size()));
  for (auto id : jobs)
    put(meta, id);
  put(meta, static_cast<std::uint32_t>(consumed.size()));
  for (auto& ref : consumed) {
    put(meta, ref.sequence);
    put(meta, ref.offset);
  }
  return meta;
}

std::optional<journal_consumption> parse_consumption_meta(std::string_view meta) {
  field_reader in{meta};
  journal_consumption consumption;
  auto jobs = in.number<std::uint32_t>();
  for (std::uint32_t i = 0; in.ok && i < jobs; ++i)
    consumption.jobs.push_back(in.number<std::int64_t>());
  auto refs = in.number<std::uint32_t>();
  for (std::uint32_t i = 0; in.ok && i < refs; ++i) {
    journal_ref ref;
    ref.sequence = in.number<std::uint64_t>();
    ref.offset = in.number<std::uint64_t>();
    consumption.consumed.push_back(ref);
  }
  return in.ok ? std::optional<journal_consumption>{consumption} : std::nullopt;
}

std::optional<std::uint64_t> segment_number(const std::string& name) {
  constexpr std::string_view prefix = "segment-", suffix = ".log";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  auto digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(digits);
}

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
        if (auto origin = parse_instance_meta(record->meta)) {
          seg->live.insert(offset);
          pending_.insert(ref);
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
      pending_.erase(ref);
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
  while (!stopping_) {
    // One segment ahead, made once the one taking appends is half full:
    // zero-filling early would compete with ingest for the disk for nothing.
    bool needed = free_.empty() && (active_.empty() || active_.back()->sealed ||
                                    active_.back()->used > active_.back()->size / 2);
    if (!needed) {
      prepare_wanted_.wait(lock);
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
    pending_.insert(ticket.ref);
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
    pending_.erase(ticket.ref);
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
    pending_.erase(ref);
  return ticket->ref;
}

void journal::release(const std::vector<journal_ref>& refs) {
  {
    std::lock_guard lock(mutex_);
    for (auto& ref : refs) {
      if (auto* seg = find(ref.sequence))
        seg->live.erase(ref.offset);
      pending_.erase(ref);
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
      // appends, nor one a flush is working on.
      if (flushing_ || active_.size() < 2 || !active_.front()->live.empty())
        return;
      for (auto& [start, writing] : writing_)
        if (writing.seg == active_.front().get())
          return;
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

std::vector<journaled_instance> journal::pending_instances() const {
  struct where {
    journal_ref ref;
    int fd;
    std::uint64_t size;
  };
  std::vector<where> places;
  {
    std::lock_guard lock(mutex_);
    for (auto& ref : pending_)
      if (auto* seg = find(ref.sequence))
        places.push_back({ref, seg->fd, seg->size});
  }
  std::vector<journaled_instance> pending;
  pending.reserve(places.size());
  for (auto& place : places)
    if (auto origin = read_origin(place.fd, place.ref, place.size))
      pending.push_back(std::move(*origin));
  return pending;
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
