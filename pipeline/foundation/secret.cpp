#include "pipeline/foundation/secret.hpp"

#include "pipeline/foundation/files.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>

namespace dcmstreams {

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  for (std::size_t got = 0; got < bytes;) {
    auto n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n > 0)
      got += static_cast<std::size_t>(n);
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

namespace {

constexpr std::size_t shortest_secret = 16;

/// Writes a new secret; false (and no error) if another process made the file first.
result<bool> create_secret(const std::filesystem::path& file) {
  if (auto problem = create_directories(file.parent_path(), true))
    return *problem;
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      return false;
    return failure{ec::io_error,
                   file.string() + ": cannot create the secret: " + errno_text(errno)};
  }
  auto text = random_hex(32) + "\n";
  int error = write_fully(fd, text);
  if (error == 0 && ::fsync(fd) != 0)
    error = errno;
  ::close(fd);
  if (error == 0)
    error = sync_directory(file.parent_path()) ? EIO : 0;
  if (error != 0) {
    ::unlink(file.c_str());
    return failure{ec::io_error, file.string() + ": cannot write the secret: " + errno_text(error)};
  }
  return true;
}

} // namespace

result<std::string> load_secret(const std::filesystem::path& file, bool create) {
  std::error_code missing;
  if (create && !std::filesystem::exists(file, missing))
    if (auto made = create_secret(file); !made)
      return made.error();
  auto text = read_text_file(file);
  if (!text)
    return failure{ec::invalid_config,
                   text.error().message + (create ? ""
                                                  : "; name an existing file, or leave the "
                                                    "setting out for the node's own secret")};
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r'))
    text->pop_back();
  if (text->size() < shortest_secret)
    return failure{ec::invalid_config,
                   file.string() + ": a secret of " + std::to_string(text->size()) +
                       " characters is too short to key pseudonyms; use at least " +
                       std::to_string(shortest_secret) + " (the node makes 64 hex digits)"};
  return *text;
}

} // namespace dcmstreams
