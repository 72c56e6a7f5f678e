#pragma once
// Registers DCMTK's JPEG, JPEG-LS and RLE codecs once per process. There is no
// JPEG 2000 codec in Debian's DCMTK 3.6.7.

namespace dcmstreams {

/// Safe to call more than once and from several threads.
void register_dicom_codecs();

} // namespace dcmstreams
