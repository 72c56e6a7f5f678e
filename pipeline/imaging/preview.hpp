#pragma once
// Pictures of a job's image series for the web UI: which series a set of
// files holds, in the volume loader's slice order and with the windows to
// show them in, and one slice rendered through a window to a grey PNG. The
// same reader as the kernels' (pipeline/imaging/volume.hpp), so a picture
// shows what a kernel would see.

#include "pipeline/foundation/error.hpp"
#include "pipeline/imaging/volume.hpp"

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace dcmstreams {

struct preview_series {
  std::string series_uid;
  std::string modality;
  std::string description;
  std::vector<std::filesystem::path> files; // in slice order
  unsigned rows = 0, columns = 0;
  /// The data's own windows first, then presets for the modality (CT), then
  /// the range of the middle slice's values; empty when nothing is shown.
  std::vector<named_window> windows;
  /// Why the series has no pictures ("" when it has): the first reason one
  /// of its files gave (a transfer syntax without a codec here, colour, ...).
  std::string not_shown;
};

/// The series among `files`, each file's header read once and the middle
/// slice of each image series decoded (for its value range). Files that are
/// not DICOM at all are left out.
std::vector<preview_series> index_series(const std::vector<std::filesystem::path>& files);

/// The window a preview asks for: one of `windows` by name, or "CENTER,WIDTH".
result<named_window> choose_window(const std::vector<named_window>& windows,
                                   const std::string& asked);

/// Renders the image in `file` through `window` (PS3.3 C.11.2.1.2's linear
/// function on the rescaled values; MONOCHROME1 inverted) to an 8-bit grey
/// PNG whose longer side is at most `max_size` pixels, in the image's true
/// proportions (pixel spacing).
result<std::string> render_png(const std::filesystem::path& file, const named_window& window,
                               unsigned max_size);

} // namespace dcmstreams
