#include "pipeline/jobs/journal_format.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace dcmstreams::journal_format {

namespace {

constexpr char segment_magic[8] = {'D', 'C', 'S', 'J', 'S', 'E', 'G', '1'};
constexpr std::uint32_t record_magic = 0x4A534344; // "DCSJ"
constexpr std::uint16_t record_version = 1;
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

// -- little-endian fields

template <class T> void put(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<char>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xFF));
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

} // namespace

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

std::optional<parsed_record> read_record(int fd, std::uint64_t sequence, std::uint64_t offset,
                                         std::uint64_t segment_size, bool whole) {
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

} // namespace dcmstreams::journal_format
