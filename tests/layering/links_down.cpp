// Compiled as pipeline/dicom is: it may include itself and pipeline/foundation.
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/foundation/json.hpp"

int main() {
  return dcmstreams::json::above_zero(1) ? 0 : 1;
}
