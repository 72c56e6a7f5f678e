#pragma once
// The node's regular expressions (routing rules, a stream's `accept` filters,
// a destination's `which` filters): case-insensitive ECMAScript searches, as
// the old appliance's were. A pattern is checked before it is compiled: at
// most 512 characters and no back-reference. libstdc++ compiles and matches
// recursively, and its compiler overflows on a back-reference of many digits
// (found by fuzzing routing.json); nothing the node matches (AE titles,
// outcomes, attribute values) needs either.

#include "pipeline/foundation/error.hpp"

#include <regex>
#include <string>

namespace dcmstreams {

constexpr std::size_t max_pattern_length = 512;

/// The compiled pattern; the failure says what is wrong with it in words.
result<std::regex> compile_pattern(const std::string& pattern);

} // namespace dcmstreams
