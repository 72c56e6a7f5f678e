#include "pipeline/dicom/synth.hpp"

#include "pipeline/dicom/dicom_file.hpp"

#include "pipeline/dicom/codecs.hpp"
#include "pipeline/foundation/files.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <random>

namespace dcmstreams {

namespace fs = std::filesystem;

namespace {

struct syntax_choice {
  const char* name;
  E_TransferSyntax xfer;
};

const syntax_choice syntaxes[] = {
    {"explicit-le", EXS_LittleEndianExplicit},
    {"implicit-le", EXS_LittleEndianImplicit},
    {"deflated", EXS_DeflatedLittleEndianExplicit},
    {"jpeg-lossless", EXS_JPEGProcess14SV1},
    {"jpeg-ls", EXS_JPEGLSLossless},
    {"rle", EXS_RLELossless},
};

std::string new_uid(const char* root) {
  char buffer[100];
  return dcmGenerateUniqueIdentifier(buffer, root);
}

std::string format_decimal(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

// A cheap deterministic hash for phantom noise, so files are reproducible in
// content while their UIDs are fresh.
std::uint32_t mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  x ^= x >> 16;
  return x;
}

struct phantom {
  bool ct;
  int series_index;

  // The value at patient coordinates (mm): Hounsfield units for CT, signal for MR.
  double value(double x, double y, double z, std::uint32_t noise_seed) const {
    double noise = static_cast<double>(mix(noise_seed) % 21) - 10.0;
    double body = (x / 150) * (x / 150) + (y / 110) * (y / 110);
    if (body > 1)
      return ct ? -1000 + noise : 0;
    double spine = (x * x + (y - 70) * (y - 70)) / (15.0 * 15.0);
    if (spine <= 1)
      return ct ? 700 + noise : 200 + noise;
    double lesion = ((x - 30) * (x - 30) + (y + 20) * (y + 20) + z * z) / (20.0 * 20.0);
    if (lesion <= 1)
      return (ct ? 120 : 900 - 150 * series_index) + noise;
    return (ct ? 40 : 600 + 50 * series_index) + noise;
  }
};

status write_slice(const synth_options& options, E_TransferSyntax xfer, const fs::path& path,
                   const std::string& study_uid, const std::string& series_uid,
                   const std::string& frame_uid, const std::string& patient_id,
                   const std::string& patient_name, int study_index, int series_index,
                   int slice_index, const std::string& date, const std::string& time,
                   std::vector<Uint16>& pixels, std::uint64_t& bytes) {
  const bool ct = options.modality == "CT";
  const double spacing = options.slice_spacing_mm > 0 ? options.slice_spacing_mm : (ct ? 2.5 : 5.0);
  const double pixel_spacing = options.field_of_view_mm / std::max(options.rows, options.cols);
  const double x0 = -pixel_spacing * (options.cols - 1) / 2.0;
  const double y0 = -pixel_spacing * (options.rows - 1) / 2.0;
  const double z = (slice_index - (options.instances - 1) / 2.0) * spacing;

  phantom body{ct, series_index};
  for (int r = 0; r < options.rows; ++r)
    for (int c = 0; c < options.cols; ++c) {
      double value = body.value(x0 + c * pixel_spacing, y0 + r * pixel_spacing, z,
                                static_cast<std::uint32_t>((slice_index * 7919 + r) * 104729 + c));
      double stored = ct ? value + 1024 : value;
      pixels[static_cast<std::size_t>(r) * options.cols + c] =
          static_cast<Uint16>(std::clamp(std::lround(stored), 0L, 4095L));
    }

  DcmFileFormat file;
  DcmDataset& ds = *file.getDataset();
  auto put = [&](const DcmTagKey& tag, const std::string& value) {
    return ds.putAndInsertString(tag, value.c_str()).good();
  };
  put(DCM_SpecificCharacterSet, "ISO_IR 100");
  put(DCM_SOPClassUID, ct ? UID_CTImageStorage : UID_MRImageStorage);
  put(DCM_SOPInstanceUID, new_uid(SITE_INSTANCE_UID_ROOT));
  put(DCM_StudyInstanceUID, study_uid);
  put(DCM_SeriesInstanceUID, series_uid);
  put(DCM_FrameOfReferenceUID, frame_uid);
  put(DCM_PatientName, patient_name);
  put(DCM_PatientID, patient_id);
  put(DCM_PatientBirthDate, "19700101");
  put(DCM_PatientSex, study_index % 2 ? "F" : "M");
  put(DCM_StudyDate, date);
  put(DCM_StudyTime, time);
  put(DCM_SeriesDate, date);
  put(DCM_SeriesTime, time);
  put(DCM_ContentDate, date);
  put(DCM_ContentTime, time);
  put(DCM_AccessionNumber, "SYN" + std::to_string(study_index + 1));
  put(DCM_StudyID, std::to_string(study_index + 1));
  put(DCM_StudyDescription, "dcmstreams synthetic " + options.modality + " study");
  put(DCM_ReferringPhysicianName, "");
  put(DCM_Modality, options.modality);
  put(DCM_SeriesNumber, std::to_string(series_index + 1));
  put(DCM_SeriesDescription, "synthetic series " + std::to_string(series_index + 1));
  put(DCM_PatientPosition, "HFS");
  put(DCM_PositionReferenceIndicator, "");
  put(DCM_Manufacturer, "dcmstreams");
  put(DCM_InstanceNumber, std::to_string(slice_index + 1));
  put(DCM_AcquisitionNumber, "1");
  put(DCM_ImageType, ct ? "ORIGINAL\\PRIMARY\\AXIAL" : "ORIGINAL\\PRIMARY\\OTHER");
  // An unpaired body part, so that Laterality is rightly absent.
  put(DCM_BodyPartExamined, ct ? "CHEST" : "HEAD");
  put(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
  put(DCM_ImagePositionPatient,
      format_decimal(x0) + "\\" + format_decimal(y0) + "\\" + format_decimal(z));
  put(DCM_SliceLocation, format_decimal(z));
  put(DCM_SliceThickness, format_decimal(spacing));
  put(DCM_PixelSpacing, format_decimal(pixel_spacing) + "\\" + format_decimal(pixel_spacing));
  if (ct) {
    put(DCM_KVP, "120");
    put(DCM_RescaleIntercept, "-1024");
    put(DCM_RescaleSlope, "1");
    put(DCM_RescaleType, "HU");
    put(DCM_WindowCenter, "40");
    put(DCM_WindowWidth, "400");
  } else {
    put(DCM_ScanningSequence, "SE");
    put(DCM_SequenceVariant, "NONE");
    put(DCM_ScanOptions, "");
    put(DCM_MRAcquisitionType, "2D");
    put(DCM_RepetitionTime, series_index % 2 ? "2500" : "500");
    put(DCM_EchoTime, series_index % 2 ? "90" : "15");
    put(DCM_EchoTrainLength, "1");
    put(DCM_MagneticFieldStrength, "1.5");
    put(DCM_ImagedNucleus, "1H");
  }
  ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  put(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(options.rows));
  ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(options.cols));
  ds.putAndInsertUint16(DCM_BitsAllocated, 16);
  ds.putAndInsertUint16(DCM_BitsStored, 12);
  ds.putAndInsertUint16(DCM_HighBit, 11);
  ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
  ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(),
                             static_cast<unsigned long>(pixels.size()));

  if (DcmXfer(xfer).isEncapsulated()) {
    OFCondition cond = EC_Normal;
    if (xfer == EXS_JPEGProcess14SV1) {
      DJ_RPLossless params;
      cond = ds.chooseRepresentation(xfer, &params);
    } else if (xfer == EXS_JPEGLSLossless) {
      DJLSRepresentationParameter params;
      cond = ds.chooseRepresentation(xfer, &params);
    } else {
      DcmRLERepresentationParameter params;
      cond = ds.chooseRepresentation(xfer, &params);
    }
    if (cond.bad() || !ds.canWriteXfer(xfer))
      return failure{ec::unsupported, path.string() + ": cannot encode in " +
                                          DcmXfer(xfer).getXferName() + ": " + cond.text()};
  }
  OFCondition cond = file.saveFile(path.c_str(), xfer);
  if (cond.bad())
    return failure{ec::io_error, path.string() + ": cannot write: " + cond.text()};
  std::error_code ignored;
  bytes += fs::file_size(path, ignored);
  return std::nullopt;
}

} // namespace

std::string synth_transfer_syntax_names() {
  std::string names;
  for (auto& s : syntaxes)
    names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

status check_synth_options(const synth_options& o) {
  auto out_of_range = [](const char* option, int value, int min, int max) -> status {
    if (value < min || value > max)
      return failure{ec::invalid_argument, std::string(option) + " must be between " +
                                               std::to_string(min) + " and " + std::to_string(max) +
                                               ", not " + std::to_string(value)};
    return std::nullopt;
  };
  if (o.out.empty())
    return failure{ec::invalid_argument, "--out DIR is required: the folder to write studies to"};
  for (auto problem :
       {out_of_range("--studies", o.studies, 1, 100000),
        out_of_range("--series", o.series, 1, 1000),
        out_of_range("--instances", o.instances, 1, 100000),
        out_of_range("--rows", o.rows, 1, 65535), out_of_range("--cols", o.cols, 1, 65535)})
    if (problem)
      return problem;
  if (o.modality != "CT" && o.modality != "MR")
    return failure{ec::invalid_argument, "--modality must be CT or MR, not " + o.modality};
  auto known = std::any_of(std::begin(syntaxes), std::end(syntaxes),
                           [&](auto& s) { return o.transfer_syntax == s.name; });
  if (!known)
    return failure{ec::invalid_argument, "--transfer-syntax must be one of " +
                                             synth_transfer_syntax_names() + ", not " +
                                             o.transfer_syntax};
  return std::nullopt;
}

result<synth_result> synthesize(const synth_options& options) {
  if (auto problem = check_synth_options(options))
    return *problem;
  register_dicom_codecs();
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  for (auto& s : syntaxes)
    if (options.transfer_syntax == s.name)
      xfer = s.xfer;

  auto now = dicom_now();
  const std::string& date = now.date;
  const std::string& time = now.time;
  std::random_device entropy;

  synth_result result;
  std::vector<Uint16> pixels(static_cast<std::size_t>(options.rows) * options.cols);
  for (int study = 0; study < options.studies; ++study) {
    auto study_uid = new_uid(SITE_STUDY_UID_ROOT);
    result.study_uids.push_back(study_uid);
    auto patient_id = "SYN" + std::to_string(entropy() % 1000000);
    auto patient_name = "SYNTHETIC^PATIENT" + std::to_string(study + 1);
    auto frame_uid = new_uid(SITE_INSTANCE_UID_ROOT);
    for (int series = 0; series < options.series; ++series) {
      auto series_uid = new_uid(SITE_SERIES_UID_ROOT);
      auto dir = options.out / ("study" + std::to_string(study + 1)) /
                 ("series" + std::to_string(series + 1));
      if (auto problem = create_directories(dir, false))
        return *problem;
      for (int slice = 0; slice < options.instances; ++slice) {
        char name[32];
        std::snprintf(name, sizeof name, "%05d.dcm", slice + 1);
        auto path = dir / name;
        if (auto problem =
                write_slice(options, xfer, path, study_uid, series_uid, frame_uid, patient_id,
                            patient_name, study, series, slice, date, time, pixels, result.bytes))
          return *problem;
        result.files.push_back(path);
      }
    }
  }
  return result;
}

} // namespace dcmstreams
