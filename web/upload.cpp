#include "web/upload.hpp"

#include "pipeline/dicom_file.hpp"
#include "pipeline/file_meta.hpp"
#include "pipeline/files.hpp"
#include "pipeline/store.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

namespace dcmstreams::web {

namespace {

struct archive_closer {
  void operator()(archive* a) const { archive_read_free(a); }
};

result<std::string> read_entry(archive* a, const std::string& name) {
  std::string content;
  char block[1 << 16];
  for (;;) {
    auto n = archive_read_data(a, block, sizeof block);
    if (n < 0)
      return failure{ec::invalid_argument,
                     "ZIP entry " + name + " cannot be read: " + archive_error_string(a)};
    if (n == 0)
      return content;
    content.append(block, static_cast<std::size_t>(n));
  }
}

/// Reads the UIDs of one entry through a scratch file (DCMTK parses files).
result<instance_header> header_of(const std::string& content,
                                  const std::filesystem::path& scratch) {
  if (auto problem = write_file_atomically(scratch, content, false))
    return *problem;
  auto header = read_instance_header(scratch);
  std::error_code ignored;
  std::filesystem::remove(scratch, ignored);
  return header;
}

} // namespace

result<unpacked_upload> unpack_upload(const void* bytes, std::size_t size,
                                      const std::filesystem::path& data_dir,
                                      const upload_source& source, bool durable) {
  std::unique_ptr<archive, archive_closer> reader{archive_read_new()};
  archive_read_support_format_zip(reader.get());
  if (archive_read_open_memory(reader.get(), bytes, size) != ARCHIVE_OK)
    return failure{ec::invalid_argument, std::string("the upload is not a ZIP archive: ") +
                                             archive_error_string(reader.get()) +
                                             "; send a .zip of DICOM files"};
  store_layout layout{data_dir};
  static std::atomic<unsigned> sequence{0};
  auto scratch = layout.receive_dir() /
                 ("upload-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++));
  unpacked_upload upload;
  std::set<study_key> studies;
  archive_entry* entry = nullptr;
  for (;;) {
    int next = archive_read_next_header(reader.get(), &entry);
    if (next == ARCHIVE_EOF)
      break;
    if (next != ARCHIVE_OK && next != ARCHIVE_WARN)
      return failure{ec::invalid_argument, std::string("the ZIP archive is damaged: ") +
                                               archive_error_string(reader.get())};
    if (archive_entry_filetype(entry) != AE_IFREG)
      continue;
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "?";
    auto content = read_entry(reader.get(), name);
    if (!content)
      return content.error();
    auto offset = dataset_offset(*content);
    if (!offset) {
      upload.skipped.push_back(name + ": not a DICOM file (no DICM after the 128-byte preamble)");
      continue;
    }
    auto header = header_of(*content, scratch);
    if (!header) {
      upload.skipped.push_back(name + ": " + header.error().message);
      continue;
    }
    if (!valid_uid(header->study_uid) || !valid_uid(header->sop_instance_uid)) {
      upload.skipped.push_back(name + ": StudyInstanceUID or SOPInstanceUID is missing or invalid");
      continue;
    }
    // The same file meta the listener writes, so that recovery after a
    // crash finds the upload's study key in it.
    auto meta = encode_file_meta({header->sop_class_uid, header->sop_instance_uid,
                                  header->transfer_syntax_uid, source.calling_ae, source.called_ae,
                                  presentation_address(source.peer, 0)});
    std::string_view data_set{*content};
    data_set.remove_prefix(*offset);
    std::string file = meta;
    file.append(data_set);
    auto path = layout.incoming_instance(source.called_ae, source.calling_ae, source.peer,
                                         header->study_uid, header->sop_instance_uid);
    if (auto problem = create_directories(path.parent_path(), durable))
      return *problem;
    if (auto problem = write_file_atomically(path, file, durable))
      return *problem;
    struct stat info {};
    ::stat(path.c_str(), &info);
    study_key key{source.called_ae, source.calling_ae, source.peer, header->study_uid};
    studies.insert(key);
    upload.instances.push_back(
        {key, arrived_instance{header->sop_instance_uid, path.string(), file.size(), info.st_ino}});
  }
  if (upload.instances.empty())
    return failure{ec::invalid_argument,
                   "the ZIP archive holds no DICOM file" +
                       (upload.skipped.empty() ? std::string{}
                                               : " (first entry: " + upload.skipped.front() + ")")};
  upload.studies.assign(studies.begin(), studies.end());
  return upload;
}

std::vector<form_part> parse_multipart(std::string_view body, std::string_view content_type) {
  std::vector<form_part> parts;
  auto at = content_type.find("boundary=");
  if (at == std::string_view::npos)
    return parts;
  auto boundary = content_type.substr(at + 9);
  boundary = boundary.substr(0, boundary.find(';'));
  if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"')
    boundary = boundary.substr(1, boundary.size() - 2);
  if (boundary.empty())
    return parts;
  std::string delimiter = "--" + std::string(boundary);
  auto position = body.find(delimiter);
  while (position != std::string_view::npos) {
    auto headers_start = position + delimiter.size();
    if (body.substr(headers_start, 2) == "--")
      break;            // the closing delimiter
    headers_start += 2; // CRLF
    auto headers_end = body.find("\r\n\r\n", headers_start);
    if (headers_end == std::string_view::npos)
      break;
    auto headers = body.substr(headers_start, headers_end - headers_start);
    auto content_start = headers_end + 4;
    auto next = body.find("\r\n" + delimiter, content_start);
    if (next == std::string_view::npos)
      break;
    form_part part;
    auto quoted = [&](std::string_view key) -> std::string {
      auto k = headers.find(key);
      if (k == std::string_view::npos)
        return {};
      auto begin = k + key.size();
      auto end = headers.find('"', begin);
      return end == std::string_view::npos ? std::string{}
                                           : std::string(headers.substr(begin, end - begin));
    };
    part.name = quoted(" name=\"");
    part.filename = quoted("filename=\"");
    part.offset = content_start;
    part.length = next - content_start;
    parts.push_back(std::move(part));
    position = next + 2;
  }
  return parts;
}

result<mapped_file> mapped_file::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failure{ec::io_error, "cannot open " + path.string() + ": " + std::strerror(errno)};
  struct stat info {};
  ::fstat(fd, &info);
  auto size = static_cast<std::size_t>(info.st_size);
  void* data = nullptr;
  if (size > 0) {
    data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return failure{ec::io_error, "cannot map " + path.string() + ": " + std::strerror(error)};
    }
  }
  ::close(fd);
  return mapped_file{data, size};
}

mapped_file::mapped_file(mapped_file&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

mapped_file::~mapped_file() {
  if (data_)
    ::munmap(data_, size_);
}

} // namespace dcmstreams::web
