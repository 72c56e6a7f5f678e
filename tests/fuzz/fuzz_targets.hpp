#pragma once
// The fuzz targets' bodies: what libFuzzer calls (tests/fuzz/*_fuzz.cpp,
// built with clang, ASan and UBSan by scripts/fuzz.sh) and what the unit test
// fuzz_regressions replays on every seed and every input that once failed
// (tests/fuzz/seeds/<target>/). Each returns 0; a broken promise aborts.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dcmstreams::fuzz {

/// The bytes of a received data set (file meta and data set) as the listener
/// hands them to DCMTK and the header reader.
int dataset(const std::uint8_t* data, std::size_t size);

/// Every JSON reader: the first byte picks the node configuration ('c'),
/// routing.json ('r'), a stream's info.json ('s'), a kernel step ('k'), or
/// (any other) a parse-and-write round trip.
int json_readers(const std::uint8_t* data, std::size_t size);

/// An HTTP request without a socket: "METHOD TARGET\n", header lines, a blank
/// line, the body. Target parsing, the Host and cross-site guard, the login
/// check, and multipart form bodies.
int http_request(const std::uint8_t* data, std::size_t size);

/// A ZIP upload's bytes, unpacked into a scratch data folder.
int zip_upload(const std::uint8_t* data, std::size_t size);

/// The bytes a peer sends to the DICOM port, on one connection to a real
/// listener on loopback: the A-ASSOCIATE-RQ into the negotiation, and what
/// follows it (P-DATA with C-ECHO and C-STORE, A-RELEASE, A-ABORT, garbage).
int association(const std::uint8_t* data, std::size_t size);

/// The target by name ("dataset", "json_readers", "http_request", "zip_upload").
using target = int (*)(const std::uint8_t*, std::size_t);
target find_target(std::string_view name);

/// Aborts with `what` when a promise is broken, so that libFuzzer keeps the input.
void require(bool promise, const char* what);

} // namespace dcmstreams::fuzz
