// libFuzzer's entry into one target (FUZZ_TARGET names it; see fuzz_targets.hpp).

#include "pipeline/foundation/log.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Millions of bad inputs: their warnings would only slow the run down.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  dcmstreams::log::set_level(dcmstreams::log::level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return dcmstreams::fuzz::FUZZ_TARGET(data, size);
}
