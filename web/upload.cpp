#include "web/upload.hpp"

#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/file_meta.hpp"
#include "pipeline/foundation/files.hpp"
#include "pipeline/jobs/store.hpp"
#include "web/http.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

namespace dcmstreams::web {

namespace {

/// libarchive's words for what went wrong; it has none for some damaged
/// archives (a null string that must not reach std::string).
std::string archive_problem(archive* a) {
  const char* text = archive_error_string(a);
  return text ? text : "no reason given";
}

struct archive_closer {
  void operator()(archive* a) const { archive_read_free(a); }
};

// A file descriptor closed when it goes out of scope.
struct file_handle {
  int fd = -1;
  explicit file_handle(int f) : fd(f) {}
  ~file_handle() {
    if (fd >= 0)
      ::close(fd);
  }
  file_handle(const file_handle&) = delete;
  file_handle& operator=(const file_handle&) = delete;
};

} // namespace

// Everything one upload wrote, removed unless the upload succeeds: a failed
// upload (a full disk, a damaged archive) leaves nothing half-written and no
// instance nobody was told about.
class written_files {
public:
  ~written_files() {
    if (kept_)
      return;
    std::error_code ignored;
    for (auto& file : files_)
      std::filesystem::remove(file, ignored);
  }
  void add(const std::filesystem::path& file) { files_.push_back(file); }
  void keep() { kept_ = true; }

private:
  std::vector<std::filesystem::path> files_;
  bool kept_ = false;
};

namespace {

failure disk_full(const std::string& name, const std::filesystem::path& data_dir) {
  return failure{ec::out_of_resources,
                 name + " does not fit on the data disk (" + data_dir.string() +
                     ") above storage.reserve_free_mb; nothing of this upload was kept: free "
                     "space or send less at once"};
}

// A write of `name` into `file` that failed with `error`: a full
// disk is 507 like the reserve, anything else an I/O error.
failure write_failure(int error, const std::string& name, const std::filesystem::path& file,
                      const std::filesystem::path& data_dir) {
  return error == ENOSPC ? disk_full(name, data_dir)
                         : failure{ec::io_error, file.string() + ": " + errno_text(error)};
}

} // namespace

upload_store::upload_store(std::filesystem::path data_dir, upload_source source, bool durable,
                           std::uint64_t reserve_bytes, journal* ingest_journal)
    : data_dir_(std::move(data_dir)), source_(std::move(source)), durable_(durable),
      reserve_bytes_(reserve_bytes), written_(std::make_unique<written_files>()),
      journal_(ingest_journal) {
  if (journal_)
    journal_->attach(writer_);
  // Named apart from the HTTP server's request bodies ("upload-…") in the
  // same folder: a scratch file of one request must never be another's body.
  static std::atomic<unsigned> sequence{0};
  scratch_ = store_layout{data_dir_}.receive_dir() /
             ("unpack-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++));
  written_->add(scratch_);
}

upload_store::~upload_store() {
  if (!journal_)
    return;
  // A failed upload leaves no record anybody would be told about.
  if (!finished_ && !records_.empty())
    journal_->release(records_);
  journal_->detach(writer_);
}

std::optional<std::string> upload_store::unusable(const result<instance_header>& header) {
  if (!header)
    return header.error().message;
  if (!valid_uid(header->study_uid) || !valid_uid(header->sop_instance_uid))
    return "StudyInstanceUID or SOPInstanceUID is missing or invalid";
  return std::nullopt;
}

void upload_store::stored(const instance_header& header, arrived_instance instance) {
  study_key key{source_.called_ae, source_.calling_ae, source_.peer, header.study_uid};
  studies_.insert(key);
  // Series, modality and description too: a stream's complete_when counts them.
  instance.sop_uid = header.sop_instance_uid;
  instance.series_uid = header.series_uid;
  instance.modality = header.modality;
  instance.series_description = header.series_description;
  stored_.instances.push_back({key, std::move(instance)});
}

result<upload_store::outcome> upload_store::add_bytes(const std::string& name,
                                                      std::string_view file) {
  auto as_file = [&] {
    std::size_t at = 0;
    return add(name, file.size(), [&](char* block, std::size_t capacity, std::string&) {
      auto n = std::min(capacity, file.size() - at);
      std::memcpy(block, file.data() + at, n);
      at += n;
      return static_cast<long>(n);
    });
  };
  auto offset = dataset_offset(file);
  if (!journal_ || !offset || file.size() > journal_->record_limit())
    return as_file();
  if (!has_room(file.size()))
    return disk_full(name, data_dir_);
  outcome result;
  auto header = read_instance_header(file, name);
  if (header) {
    result.sop_class_uid = header->sop_class_uid;
    result.sop_instance_uid = header->sop_instance_uid;
  }
  if (auto problem = unusable(header)) {
    result.why = *problem;
    return result;
  }
  // The record the listener appends for a C-STORE: its file meta, then the
  // data set as it was; one flush in finish() covers every record.
  auto record = encode_file_meta({header->sop_class_uid, header->sop_instance_uid,
                                  header->transfer_syntax_uid, source_.calling_ae,
                                  source_.called_ae, presentation_address(source_.peer, 0)});
  record.append(file.substr(*offset));
  // The node's file meta may be longer than the sender's: a file just under
  // the limit can make a record over it, which goes as a file instead.
  if (record.size() > journal_->record_limit())
    return as_file();
  writer_.active();
  auto ticket = journal_->append_instance({source_.called_ae, source_.calling_ae, source_.peer,
                                           header->study_uid, header->sop_instance_uid},
                                          record);
  if (!ticket)
    return ticket.error();
  records_.push_back(ticket->ref);
  last_record_ = *ticket;
  arrived_instance instance;
  instance.bytes = record.size();
  instance.record = ticket->ref;
  stored(*header, std::move(instance));
  result.stored = true;
  return result;
}

bool upload_store::has_room(std::uint64_t wanted) const {
  auto free = free_bytes(data_dir_);
  return !free || *free >= reserve_bytes_ + wanted;
}

result<upload_store::outcome> upload_store::add(const std::string& name,
                                                std::optional<std::uint64_t> size,
                                                const block_reader& read) {
  // The file's own size decides, not the archive's: a few kilobytes of ZIP
  // can hold gigabytes.
  if (size && !has_room(2 * *size))
    return disk_full(name, data_dir_);
  // The file goes to a scratch file block by block: memory stays flat
  // whatever its size, and the free space is checked as it grows.
  std::uint64_t file_bytes = 0;
  {
    file_handle out{::open(scratch_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (out.fd < 0)
      return failure{ec::io_error, scratch_.string() + ": " + errno_text(errno)};
    std::vector<char> block(1 << 16);
    for (;;) {
      std::string problem;
      auto n = read(block.data(), block.size(), problem);
      if (n < 0)
        return failure{ec::invalid_argument, name + " cannot be read: " + problem};
      if (n == 0)
        break;
      file_bytes += static_cast<std::uint64_t>(n);
      if (file_bytes % (std::uint64_t{16} << 20) < static_cast<std::uint64_t>(n) &&
          !has_room(std::uint64_t{16} << 20))
        return disk_full(name, data_dir_);
      if (int error = write_fully(out.fd, {block.data(), static_cast<std::size_t>(n)}))
        return write_failure(error, name, scratch_, data_dir_);
    }
  }
  outcome result;
  // Is it DICOM, and which instance? Only the start of the file is read.
  std::string start(std::min<std::uint64_t>(file_bytes, 1 << 16), '\0');
  {
    file_handle in{::open(scratch_.c_str(), O_RDONLY | O_CLOEXEC)};
    if (in.fd < 0 ||
        ::pread(in.fd, start.data(), start.size(), 0) != static_cast<ssize_t>(start.size()))
      return failure{ec::io_error, scratch_.string() + ": cannot read it back"};
  }
  auto offset = dataset_offset(start);
  if (!offset) {
    result.why = "not a DICOM file (no DICM after the 128-byte preamble)";
    return result;
  }
  auto header = read_instance_header(scratch_);
  if (header) {
    result.sop_class_uid = header->sop_class_uid;
    result.sop_instance_uid = header->sop_instance_uid;
  }
  if (auto problem = unusable(header)) {
    result.why = *problem;
    // The scratch file's name means nothing to whoever uploaded.
    if (result.why.rfind(scratch_.string() + ": ", 0) == 0)
      result.why = result.why.substr(scratch_.string().size() + 2);
    return result;
  }
  // The same file meta the listener writes, so that recovery after a
  // crash finds the upload's study key in it; then the data set as it was.
  auto meta = encode_file_meta({header->sop_class_uid, header->sop_instance_uid,
                                header->transfer_syntax_uid, source_.calling_ae, source_.called_ae,
                                presentation_address(source_.peer, 0)});
  store_layout layout{data_dir_};
  auto path = layout.incoming_instance(source_.called_ae, source_.calling_ae, source_.peer,
                                       header->study_uid, header->sop_instance_uid);
  if (auto problem = create_directories(path.parent_path(), durable_))
    return *problem;
  auto temporary = path;
  temporary += ".upload";
  written_->add(temporary);
  {
    file_handle in{::open(scratch_.c_str(), O_RDONLY | O_CLOEXEC)};
    file_handle out{::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (in.fd < 0 || out.fd < 0)
      return failure{ec::io_error, temporary.string() + ": " + errno_text(errno)};
    if (int error = write_fully(out.fd, meta))
      return write_failure(error, name, temporary, data_dir_);
    off_t from = static_cast<off_t>(*offset);
    auto left = file_bytes - *offset;
    while (left > 0) {
      auto n = ::copy_file_range(in.fd, &from, out.fd, nullptr, left, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return write_failure(n < 0 ? errno : EIO, name, temporary, data_dir_);
      left -= static_cast<std::uint64_t>(n);
    }
    if (durable_ && ::fdatasync(out.fd) != 0)
      return failure{ec::io_error, temporary.string() + ": " + errno_text(errno)};
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    return failure{ec::io_error, path.string() + ": " + errno_text(errno)};
  written_->add(path);
  if (durable_)
    if (auto problem = sync_directory(path.parent_path()))
      return *problem;
  struct stat info {};
  ::stat(path.c_str(), &info);
  arrived_instance instance;
  instance.path = path.string();
  instance.bytes = static_cast<std::uint64_t>(info.st_size);
  instance.inode = info.st_ino;
  stored(*header, std::move(instance));
  result.stored = true;
  return result;
}

result<unpacked_upload> upload_store::finish() {
  if (durable_ && !records_.empty())
    if (auto problem = journal_->wait_durable(last_record_, &writer_))
      return *problem; // the destructor releases the records and removes the files
  finished_ = true;
  std::error_code ignored;
  std::filesystem::remove(scratch_, ignored);
  written_->keep();
  stored_.studies.assign(studies_.begin(), studies_.end());
  return std::move(stored_);
}

result<unpacked_upload> unpack_upload(const void* bytes, std::size_t size,
                                      const std::filesystem::path& data_dir,
                                      const upload_source& source, bool durable,
                                      std::uint64_t reserve_bytes) {
  std::unique_ptr<archive, archive_closer> reader{archive_read_new()};
  archive_read_support_format_zip(reader.get());
  if (archive_read_open_memory(reader.get(), bytes, size) != ARCHIVE_OK)
    return failure{ec::invalid_argument, std::string("the upload is not a ZIP archive: ") +
                                             archive_problem(reader.get()) +
                                             "; send a .zip of DICOM files"};
  upload_store store{data_dir, source, durable, reserve_bytes};
  std::vector<std::string> skipped;
  archive_entry* entry = nullptr;
  for (;;) {
    int next = archive_read_next_header(reader.get(), &entry);
    if (next == ARCHIVE_EOF)
      break;
    if (next != ARCHIVE_OK && next != ARCHIVE_WARN)
      return failure{ec::invalid_argument,
                     std::string("the ZIP archive is damaged: ") + archive_problem(reader.get())};
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "?";
    if (archive_entry_filetype(entry) != AE_IFREG) {
      // Folders are only structure; anything else (a symbolic link, a device)
      // is never followed nor made, and the answer says so.
      if (archive_entry_filetype(entry) != AE_IFDIR)
        skipped.push_back(name + ": not a regular file (a symbolic link or a device): left out");
      continue;
    }
    std::optional<std::uint64_t> declared;
    if (archive_entry_size_is_set(entry))
      declared = static_cast<std::uint64_t>(archive_entry_size(entry));
    auto stored = store.add("ZIP entry " + name, declared,
                            [&](char* block, std::size_t capacity, std::string& problem) {
                              auto n = archive_read_data(reader.get(), block, capacity);
                              if (n < 0)
                                problem = archive_problem(reader.get());
                              return static_cast<long>(n);
                            });
    if (!stored)
      return stored.error();
    if (!stored->stored)
      skipped.push_back(name + ": " + stored->why);
  }
  auto finished = store.finish();
  if (!finished)
    return finished.error();
  auto& upload = *finished;
  upload.skipped = std::move(skipped);
  if (upload.instances.empty()) {
    // Nothing was kept that anybody would be told about.
    return failure{ec::invalid_argument,
                   "the ZIP archive holds no DICOM file" +
                       (upload.skipped.empty() ? std::string{}
                                               : " (first entry: " + upload.skipped.front() + ")")};
  }
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
    // Content-Type: the header name in any case, the type up to its parameters.
    auto lower = lower_case(std::string(headers));
    if (auto type = lower.find("content-type:"); type != std::string::npos) {
      auto begin = lower.find_first_not_of(" \t", type + 13);
      auto end = lower.find_first_of(";\r\n", begin);
      if (begin != std::string::npos)
        part.content_type = lower.substr(begin, end == std::string::npos ? end : end - begin);
      while (!part.content_type.empty() && part.content_type.back() == ' ')
        part.content_type.pop_back();
    }
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

result<std::shared_ptr<mapped_file>> take_upload_body(const std::string& body_file) {
  auto body = mapped_file::open(body_file);
  std::error_code ignored;
  std::filesystem::remove(body_file, ignored);
  if (!body)
    return body.error();
  return std::make_shared<mapped_file>(std::move(*body));
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
