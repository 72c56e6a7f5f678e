#pragma once
// The one error enum of dcmstreams. Plain C++ code reports a `failure` (code
// and sentence); actors carry the same code inside `caf::error` (see
// actors/actors.hpp), and only the edges translate it to a DIMSE status, an
// HTTP status or an exit code.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dcmstreams {

enum class ec : std::uint8_t {
  unspecified = 1,
  invalid_argument,   // a command-line argument or API parameter is wrong
  invalid_config,     // dcmstreams.json, info.json or routing.json is wrong
  io_error,           // a file or folder could not be read or written
  database_error,     // SQLite refused a statement
  invalid_dataset,    // a DICOM data set could not be parsed
  missing_attribute,  // a required DICOM attribute is absent or malformed
  out_of_resources,   // the data disk is below its reserve
  unknown_called_ae,  // no enabled stream has this AE title
  caller_not_allowed, // the calling AE or peer is not on the allow-list
  not_found,          // no such job, study or stream
  network_error,      // a DICOM peer could not be reached or dropped us
  peer_refused,       // a DICOM peer answered with a failure status
  unsupported,        // a transfer syntax or feature that is not available
  conflict,           // the request does not fit the current state (delete a running job)
  unavailable,        // a part of the node is restarting or stopping: try again shortly
};

/// A short name for the code, as written in logs and JSON.
const char* to_string(ec code);

/// An error code with a sentence that names the file, key or peer and says
/// what to do.
struct failure {
  ec code = ec::unspecified;
  std::string message;
};

/// A value or a failure. Small on purpose: pipeline/ has no CAF.
template <class T> class result {
public:
  result(T value) : state_(std::move(value)) {}
  result(failure error) : state_(std::move(error)) {}

  explicit operator bool() const { return std::holds_alternative<T>(state_); }
  T& operator*() { return std::get<T>(state_); }
  const T& operator*() const { return std::get<T>(state_); }
  T* operator->() { return &std::get<T>(state_); }
  const T* operator->() const { return &std::get<T>(state_); }
  const failure& error() const { return std::get<failure>(state_); }
  /// The value, or `fallback` on a failure.
  T value_or(T fallback) const { return *this ? **this : std::move(fallback); }

private:
  std::variant<T, failure> state_;
};

/// What functions without a value return: nothing on success.
using status = std::optional<failure>;

} // namespace dcmstreams
