#pragma once
// The DCMTK side of the data-set bridge (pipeline/dicom/dicom_file.hpp is the
// side the rest of the node sees): the one place that loads a DICOM file into
// DCMTK's structures. Only the libraries that link DCMTK (pipeline/dicom,
// pipeline/imaging) include it.

#include "pipeline/foundation/error.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <cstdint>
#include <filesystem>

namespace dcmstreams {

/// Loads `path` into `file`; values longer than `max_value_length` bytes stay
/// on disk until asked for. The failure names the file and says why, also
/// when DCMTK throws (Debian's 3.6.7 does on some malformed data sets, stack
/// notes §12); callers keep a try/catch around what they do with the data.
status load_dicom_file(DcmFileFormat& file, const std::filesystem::path& path,
                       std::uint32_t max_value_length = DCM_MaxReadLength);

} // namespace dcmstreams
