#pragma once
// The caller allow-list of the node configuration (`dicom.allowed_callers`):
// checked when the configuration is read, applied when an association starts.

#include <optional>
#include <string>
#include <vector>

namespace dcmstreams {

/// Checks a calling AE title and peer address against `dicom.allowed_callers`.
/// An entry is "AET" (that calling AE from anywhere), "@address" or
/// "@address/prefix" (anyone from there; IPv4), or "AET@address[/prefix]"
/// (both). An empty list allows everyone.
bool caller_allowed(const std::vector<std::string>& allowed, const std::string& calling_ae,
                    const std::string& peer);

/// Checks the entries of `dicom.allowed_callers`; returns the first bad one in words.
std::optional<std::string> check_allowed_callers(const std::vector<std::string>& allowed);

} // namespace dcmstreams
