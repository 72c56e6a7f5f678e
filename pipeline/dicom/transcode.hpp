#pragma once
// Changing the transfer syntax of a file on the way out: a destination's
// `transfer_syntax` (JPEG-LS lossless, JPEG lossless, or uncompressed).

#include "pipeline/foundation/error.hpp"

#include <filesystem>
#include <string>

namespace dcmstreams {

/// Writes `input` in `syntax` ("jpeg-ls", "jpeg-lossless" or "explicit-le") to
/// `output`. Returns `input` itself when it already is in that syntax, and
/// `output` otherwise. Images the codec cannot take (colour JPEG-LS, for
/// instance) fail with the file and the reason named; callers send the
/// original instead.
result<std::filesystem::path> transcode(const std::filesystem::path& input,
                                        const std::filesystem::path& output,
                                        const std::string& syntax);

} // namespace dcmstreams
