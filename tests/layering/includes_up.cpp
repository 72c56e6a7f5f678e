// Compiled as pipeline/dicom is: pipeline/jobs links dicom, not the other way,
// so its headers are not there to include.
#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/jobs/job.hpp"

int main() {
  return 0;
}
