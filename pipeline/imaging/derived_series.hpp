#pragma once
// Writes a kernel's result as a new, derived series of the same study: new
// Series and SOP Instance UIDs, the study and patient as they were,
// ImageType DERIVED\SECONDARY, references back to the source images, and the
// geometry of the output grid.

#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/foundation/error.hpp"
#include "pipeline/imaging/volume.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace dcmstreams {

struct derived_series_request {
  const series_volume* source = nullptr;    // the series the result comes from
  const volume* image = nullptr;            // the result
  std::string stream;                       // named in SeriesDescription
  std::string derivation;                   // "gaussian sigma 1 mm; mip slab 10 mm"
  std::filesystem::path out_dir;            // files go to <out_dir>/<n>.dcm
  pseudonymizer* deidentify_with = nullptr; // apply the confidentiality profile too
};

/// Returns the files written. 16-bit results keep the source's SOP class
/// (CT, MR, ...); 8-bit results (`window`) are Secondary Capture images.
result<std::vector<std::filesystem::path>> write_derived_series(const derived_series_request& r);

} // namespace dcmstreams
