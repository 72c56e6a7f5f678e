#pragma once
// A secret the node keeps in a file of its own (the key of de-identification
// pseudonyms): made once from the kernel's random source, readable by the
// node's user only, the same ever after, so that what is derived from it
// stays the same across runs and restarts.

#include "pipeline/foundation/error.hpp"

#include <filesystem>
#include <string>

namespace dcmstreams {

/// `bytes` from the kernel's random source, as hex digits.
std::string random_hex(std::size_t bytes);

/// The secret in `file` (its text without the trailing newline); with
/// `create`, a file that does not exist is made: 32 random bytes as 64 hex
/// digits, mode 0600. A secret shorter than 16 characters is refused.
result<std::string> load_secret(const std::filesystem::path& file, bool create);

} // namespace dcmstreams
