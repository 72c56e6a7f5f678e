#pragma once
// The journal's bytes on disk (docs/ingest.md): a segment starts with one
// page (magic, sequence number, CRC); then records, each a 32-byte header
// (magic, kind, version, the segment's sequence, origin length, CRC-32C of
// all, data length), its origin and its data. What the journal does with
// them (group commit, recycling, recovery) is pipeline/jobs/journal.cpp.

#include "pipeline/jobs/journal.hpp"

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dcmstreams::journal_format {

/// A segment's first page: magic, sequence number, CRC of both, zeros.
constexpr std::uint64_t segment_header_bytes = 4096;
constexpr std::size_t record_header_bytes = 32;
constexpr std::uint16_t kind_instance = 1;
constexpr std::uint16_t kind_consumption = 2;

/// Continues a CRC-32C (start with 0) over `data`; SSE4.2 where the CPU has it.
std::uint32_t crc32c(std::uint32_t crc, std::string_view data);

/// A little-endian field of type T at `p`.
template <class T> T get(const char* p) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return static_cast<T>(value);
}

/// The header of a record of `kind` in segment `sequence`, its CRC over all three.
std::string record_header(std::uint16_t kind, std::uint64_t sequence, std::string_view meta,
                          std::string_view data);
/// A segment's first page.
std::string segment_header(std::uint64_t sequence);
/// The sequence number in a segment's first page; 0 if it is free or not ours.
std::uint64_t parse_segment_header(std::string_view page);
/// Writes and syncs a segment's first page; 0 or an errno.
int write_segment_header(int fd, std::uint64_t sequence);

/// Writes all of `parts` at `offset`; 0 or an errno.
int pwrite_fully(int fd, std::vector<iovec> parts, std::uint64_t offset);
/// Reads exactly `size` bytes at `offset`; 0, an errno, or EIO at the end of the file.
int pread_fully(int fd, char* buffer, std::size_t size, std::uint64_t offset);

struct parsed_record {
  std::uint16_t kind = 0;
  std::uint64_t total = 0; // header, origin and data
  std::uint64_t data_bytes = 0;
  std::string meta;
  std::string data;
};

/// Reads the record at `offset` if it is one of segment `sequence`; nothing
/// otherwise (the end of what was written). A `whole` read takes the data too
/// and checks the CRC; otherwise only the header and origin are read (for a
/// record the scan at open or this process's own append already checked).
std::optional<parsed_record> read_record(int fd, std::uint64_t sequence, std::uint64_t offset,
                                         std::uint64_t segment_size, bool whole = true);
/// The origin and data size of an instance record, from its header and origin alone.
std::optional<journaled_instance> read_origin(int fd, const journal_ref& ref,
                                              std::uint64_t segment_size);

/// An instance record's origin, and back.
std::string instance_meta(const journal_origin& origin);
std::optional<journal_origin> parse_instance_meta(std::string_view meta);
/// A consumption record's origin (the jobs and every record they took), and back.
std::string consumption_meta(const std::vector<std::int64_t>& jobs,
                             const std::vector<journal_ref>& consumed);
std::optional<journal_consumption> parse_consumption_meta(std::string_view meta);

/// The number in a segment's file name ("segment-7.log" gives 7).
std::optional<std::uint64_t> segment_number(const std::string& name);

} // namespace dcmstreams::journal_format
