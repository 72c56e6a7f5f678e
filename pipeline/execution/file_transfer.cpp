#include "pipeline/execution/file_transfer.hpp"

#include "pipeline/foundation/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace dcmstreams {

namespace fs = std::filesystem;

const std::uint64_t transfer_chunk_bytes = std::uint64_t{1} << 20;
const std::size_t transfer_window = 8;

result<std::vector<transfer_file>> list_transfer_files(const fs::path& root) {
  std::vector<transfer_file> files;
  std::error_code error;
  if (!fs::exists(root, error))
    return files;
  fs::recursive_directory_iterator it{root, fs::directory_options::none, error}, end;
  for (; !error && it != end; it.increment(error)) {
    auto status = it->symlink_status(error);
    if (error)
      break;
    if (!fs::is_regular_file(status))
      continue;
    auto size = it->file_size(error);
    if (error)
      break;
    files.push_back({it->path().lexically_relative(root).generic_string(), size});
  }
  if (error)
    return failure{ec::io_error,
                   root.string() + ": cannot list the files to send: " + error.message()};
  std::sort(files.begin(), files.end(),
            [](const transfer_file& a, const transfer_file& b) { return a.path < b.path; });
  return files;
}

bool safe_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/')
    return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    auto part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return false;
    start = end + 1;
  }
  return path.find('\0') == std::string_view::npos;
}

namespace {

std::uint64_t chunk_size(const transfer_file& file, std::uint64_t offset) {
  return std::min<std::uint64_t>(transfer_chunk_bytes, file.size - offset);
}

void close_all(std::vector<int>& fds) {
  for (auto& fd : fds)
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
}

} // namespace

chunk_reader::chunk_reader(fs::path root, std::vector<transfer_file> files)
    : root_(std::move(root)), files_(std::move(files)), fds_(files_.size(), -1) {}

chunk_reader::~chunk_reader() {
  close_all(fds_);
}

result<std::vector<char>> chunk_reader::read(std::uint32_t file, std::uint64_t offset) {
  if (file >= files_.size() || offset > files_[file].size)
    return failure{ec::invalid_argument, "chunk " + std::to_string(file) + "@" +
                                             std::to_string(offset) +
                                             " is not part of the transfer"};
  auto& entry = files_[file];
  auto path = root_ / entry.path;
  if (fds_[file] < 0) {
    fds_[file] = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fds_[file] < 0)
      return failure{ec::io_error, path.string() + ": cannot open to send: " + errno_text(errno)};
  }
  std::vector<char> data(chunk_size(entry, offset));
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = ::pread(fds_[file], data.data() + done, data.size() - done,
                     static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return failure{ec::io_error,
                     path.string() + ": cannot read to send" +
                         (n == 0 ? std::string(" (it became shorter)") : ": " + errno_text(errno))};
    done += static_cast<std::size_t>(n);
  }
  if (offset + data.size() == entry.size) {
    ::close(fds_[file]);
    fds_[file] = -1;
  }
  return data;
}

chunk_writer::chunk_writer(fs::path root, std::vector<transfer_file> files)
    : chunk_writer(std::move(root), std::move(files), transfer_window) {}

chunk_writer::chunk_writer(fs::path root, std::vector<transfer_file> files, std::size_t window)
    : root_(std::move(root)), files_(std::move(files)), fds_(files_.size(), -1),
      window_(std::max<std::size_t>(1, window)) {
  for (auto& file : files_)
    total_ += file.size;
}

chunk_writer::~chunk_writer() {
  close_all(fds_);
}

status chunk_writer::open() {
  for (auto& entry : files_)
    if (!safe_relative_path(entry.path))
      return failure{ec::invalid_argument,
                     "the peer sent the file name \"" + entry.path +
                         "\", which would leave the folder it is meant for; nothing is written"};
  for (std::size_t i = 0; i < files_.size(); ++i) {
    auto& entry = files_[i];
    auto path = root_ / entry.path;
    if (auto problem = create_directories(path.parent_path(), false))
      return problem;
    fds_[i] = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fds_[i] < 0)
      return failure{ec::io_error, path.string() + ": cannot create: " + errno_text(errno)};
    if (entry.size == 0) {
      ::close(fds_[i]);
      fds_[i] = -1;
    }
  }
  return std::nullopt;
}

std::optional<chunk_request> chunk_writer::next() {
  while (next_file_ < files_.size() && next_offset_ >= files_[next_file_].size) {
    ++next_file_;
    next_offset_ = 0;
  }
  if (outstanding_ >= window_ || next_file_ >= files_.size())
    return std::nullopt;
  chunk_request request{next_file_, next_offset_};
  next_offset_ += chunk_size(files_[next_file_], next_offset_);
  ++outstanding_;
  return request;
}

status chunk_writer::accept(std::uint32_t file, std::uint64_t offset,
                            const std::vector<char>& data) {
  if (outstanding_ == 0 || file >= files_.size() || fds_[file] < 0 ||
      offset + data.size() > files_[file].size || data.size() != chunk_size(files_[file], offset) ||
      data.empty())
    return failure{ec::invalid_argument, "a chunk of " + std::to_string(data.size()) +
                                             " bytes for file " + std::to_string(file) + " at " +
                                             std::to_string(offset) + " was not asked for"};
  auto path = root_ / files_[file].path;
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = ::pwrite(fds_[file], data.data() + done, data.size() - done,
                      static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return failure{errno == ENOSPC ? ec::out_of_resources : ec::io_error,
                     path.string() + ": cannot write: " + errno_text(errno)};
    done += static_cast<std::size_t>(n);
  }
  --outstanding_;
  received_ += data.size();
  if (offset + data.size() == files_[file].size) {
    ::close(fds_[file]);
    fds_[file] = -1;
  }
  return std::nullopt;
}

} // namespace dcmstreams
