#pragma once
// The node's regular expressions (routing rules, a stream's `accept` filters,
// a destination's `which` filters): case-insensitive ECMAScript searches, as
// the old appliance's were. A pattern is checked before it is compiled: at
// most 512 characters, no back-reference, repetition counts that multiply to
// at most 10000.
// libstdc++ compiles and matches recursively, and its compiler overflows on a
// number of many digits in a back-reference or a count (found by fuzzing
// routing.json and info.json); nothing the node matches (AE titles, outcomes,
// attribute values) needs them.

#include "pipeline/foundation/error.hpp"

#include <regex>
#include <string>

namespace dcmstreams {

constexpr std::size_t max_pattern_length = 512;
/// The most that a pattern's repetition counts may multiply to: libstdc++
/// builds a copy of what a count repeats for each time ("?{24}?{23}?{23}?{23}"
/// took it over 10 s and hundreds of megabytes).
constexpr std::size_t max_repetitions = 10000;

/// The compiled pattern; the failure says what is wrong with it in words.
result<std::regex> compile_pattern(const std::string& pattern);

} // namespace dcmstreams
