#pragma once
// DICOMweb STOW-RS out (PS3.18 10.5): a routing destination's files posted to
// its service as multipart/related bodies of application/dicom parts, with
// Boost.Beast. Each request carries up to 64 instances or 256 MiB (a larger
// file goes alone) and is streamed from the files in 64 KiB pieces, so memory
// stays flat whatever the study's size. Each file's outcome comes from the
// PS3.18 Store Instances Response: the Referenced SOP Sequence (0008,1199)
// stored, the Failed SOP Sequence (0008,1198) with its Failure Reason
// refused; a request the service does not answer with one (401, 503, a
// broken connection) leaves its files unsent, for the retry policy.

#include "pipeline/routing/storage_client.hpp"

namespace dcmstreams::net {

/// Sends `files` to `target` one request after another; every file gets an
/// outcome through `on_file` and in the report. `timeout_s` bounds each step.
result<send_report> stow_files(const std::vector<std::filesystem::path>& files,
                               const dicomweb_target& target, double timeout_s,
                               const file_outcome_handler& on_file);

} // namespace dcmstreams::net
