#include "pipeline/dicom/transcode.hpp"

#include "pipeline/dicom/dcmtk_file.hpp"

#include "pipeline/dicom/codecs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <fstream>

namespace dcmstreams {

result<std::filesystem::path> transcode(const std::filesystem::path& input,
                                        const std::filesystem::path& output,
                                        const std::string& syntax) {
  E_TransferSyntax target = syntax == "jpeg-ls"         ? EXS_JPEGLSLossless
                            : syntax == "jpeg-lossless" ? EXS_JPEGProcess14SV1
                            : syntax == "explicit-le"   ? EXS_LittleEndianExplicit
                                                        : EXS_Unknown;
  if (target == EXS_Unknown)
    return failure{ec::invalid_config, "unknown transfer syntax \"" + syntax + "\""};
  register_dicom_codecs();
  try {
    DcmFileFormat file;
    if (auto problem = load_dicom_file(file, input))
      return *problem;
    OFCondition cond;
    DcmDataset& data = *file.getDataset();
    if (data.getOriginalXfer() == target)
      return input;
    if (target == EXS_JPEGLSLossless) {
      DJLSRepresentationParameter lossless;
      cond = data.chooseRepresentation(target, &lossless);
    } else if (target == EXS_JPEGProcess14SV1) {
      DJ_RPLossless lossless;
      cond = data.chooseRepresentation(target, &lossless);
    } else {
      cond = data.chooseRepresentation(target, nullptr);
    }
    if (cond.bad() || !data.canWriteXfer(target))
      return failure{ec::unsupported, input.string() + ": cannot be written in " +
                                          DcmXfer(target).getXferName() + ": " + cond.text()};
    cond = file.saveFile(output.c_str(), target);
    if (cond.bad())
      return failure{ec::io_error, output.string() + ": cannot write: " + cond.text()};
    return output;
  } catch (const std::exception& e) {
    return failure{ec::invalid_dataset,
                   input.string() + ": not a readable DICOM file: DCMTK threw: " + e.what()};
  }
}

} // namespace dcmstreams
