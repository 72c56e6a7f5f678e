#include "pipeline/imaging/derived_series.hpp"

#include "pipeline/dicom/dicom_file.hpp"

#include "pipeline/dicom/dcmtk_file.hpp"

#include "pipeline/foundation/files.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>

namespace dcmstreams {

namespace {

// A DS value: as many significant digits as its 16 characters hold, so a
// derived slice keeps its source's geometry (-16.443114076738 stays so).
std::string decimal(double value) {
  char buffer[32];
  for (int digits = 15; digits >= 6; --digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strlen(buffer) <= 16)
      break;
  }
  std::string text = buffer;
  return text == "-0" ? "0" : text;
}

std::string triplet(const vec3& v) {
  return decimal(v[0]) + "\\" + decimal(v[1]) + "\\" + decimal(v[2]);
}

// PS3.3 C.7.6.1.1.1: the letters of the patient directions a vector points to,
// strongest first ("L", "P", "F"...).
std::string patient_orientation(const vec3& direction) {
  const char* positive[3] = {"L", "P", "H"};
  const char* negative[3] = {"R", "A", "F"};
  int order[3] = {0, 1, 2};
  std::sort(order, order + 3,
            [&](int a, int b) { return std::abs(direction[a]) > std::abs(direction[b]); });
  std::string letters;
  for (int axis : order)
    if (std::abs(direction[axis]) > 0.0001)
      letters += direction[axis] > 0 ? positive[axis] : negative[axis];
  return letters;
}

std::string text(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  item.findAndGetOFStringArray(tag, value);
  return value.c_str();
}

// Attributes of the source that describe the source image, not the result.
const DcmTagKey stale_attributes[] = {DCM_PixelData,
                                      DCM_SOPInstanceUID,
                                      DCM_SeriesInstanceUID,
                                      DCM_InstanceNumber,
                                      DCM_ImagePositionPatient,
                                      DCM_ImageOrientationPatient,
                                      DCM_SliceLocation,
                                      DCM_ImageType,
                                      DCM_SeriesDescription,
                                      DCM_SeriesNumber,
                                      DCM_WindowCenter,
                                      DCM_WindowWidth,
                                      DCM_WindowCenterWidthExplanation,
                                      DCM_RescaleSlope,
                                      DCM_RescaleIntercept,
                                      DCM_RescaleType,
                                      DCM_SmallestImagePixelValue,
                                      DCM_LargestImagePixelValue,
                                      DCM_SmallestPixelValueInSeries,
                                      DCM_LargestPixelValueInSeries,
                                      DCM_PixelPaddingValue,
                                      DCM_IconImageSequence,
                                      DCM_SourceImageSequence,
                                      DCM_ReferencedSeriesSequence,
                                      DCM_DerivationDescription,
                                      DCM_DerivationCodeSequence,
                                      DCM_LossyImageCompression,
                                      DCM_LossyImageCompressionRatio,
                                      DCM_LossyImageCompressionMethod,
                                      DCM_NumberOfFrames,
                                      DCM_PlanarConfiguration,
                                      DCM_SliceThickness,
                                      DCM_PixelSpacing,
                                      DCM_SpacingBetweenSlices,
                                      DCM_Rows,
                                      DCM_Columns,
                                      DCM_BitsAllocated,
                                      DCM_BitsStored,
                                      DCM_HighBit,
                                      DCM_PixelRepresentation,
                                      DCM_SamplesPerPixel,
                                      DCM_PhotometricInterpretation};

// The patient, study and frame of reference a Secondary Capture result keeps.
const DcmTagKey kept_for_secondary_capture[] = {DCM_SpecificCharacterSet,
                                                DCM_PatientName,
                                                DCM_PatientID,
                                                DCM_PatientBirthDate,
                                                DCM_PatientSex,
                                                DCM_StudyInstanceUID,
                                                DCM_StudyDate,
                                                DCM_StudyTime,
                                                DCM_ReferringPhysicianName,
                                                DCM_StudyID,
                                                DCM_AccessionNumber,
                                                DCM_StudyDescription,
                                                DCM_Modality,
                                                DCM_PatientPosition,
                                                DCM_BodyPartExamined,
                                                DCM_FrameOfReferenceUID,
                                                DCM_PositionReferenceIndicator,
                                                DCM_Laterality};

} // namespace

result<std::vector<std::filesystem::path>> write_derived_series(const derived_series_request& r) {
  const series_volume& source = *r.source;
  const volume& image = *r.image;
  std::vector<std::filesystem::path> written;
  if (auto problem = create_directories(r.out_dir, false))
    return *problem;
  try {
    DcmFileFormat reference;
    if (auto problem = load_dicom_file(reference, source.files.front()))
      return *problem;
    DcmDataset& ref = *reference.getDataset();
    bool eight_bit = image.bits_stored == 8;
    bool modality_lut =
        text(ref, DCM_SOPClassUID) == UID_CTImageStorage || ref.tagExists(DCM_RescaleSlope);

    DcmDataset base;
    if (eight_bit) {
      for (auto& tag : kept_for_secondary_capture) {
        DcmElement* element = nullptr;
        if (ref.findAndGetElement(tag, element).good() && element)
          base.insert(static_cast<DcmElement*>(element->clone()));
      }
      base.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
      base.putAndInsertString(DCM_ConversionType, "WSD");
    } else {
      base = ref;
      for (auto& tag : stale_attributes)
        base.findAndDeleteElement(tag, OFTrue);
      // Private attributes describe the source's acquisition, not this result.
      for (long i = static_cast<long>(base.card()) - 1; i >= 0; --i) {
        DcmElement* element = base.getElement(static_cast<unsigned long>(i));
        if (element && element->getTag().isPrivate())
          delete base.remove(element);
      }
    }
    char uid[100];
    std::string series_uid = dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT);
    long series_number = 0;
    if (auto n = text(ref, DCM_SeriesNumber); !n.empty()) {
      try {
        series_number = std::stol(n);
      } catch (const std::exception&) {
      }
    }
    std::string description = text(ref, DCM_SeriesDescription);
    if (description.empty())
      description = source.modality;
    description += " [" + r.stream + "]";
    auto now = dicom_now();
    const std::string& date = now.date;
    const std::string& time = now.time;

    std::string source_type = text(ref, DCM_ImageType);
    std::string image_type = "DERIVED\\SECONDARY";
    if (auto second = source_type.find('\\'); second != std::string::npos)
      if (auto third = source_type.find('\\', second + 1); third != std::string::npos)
        image_type += source_type.substr(third);

    for (std::size_t z = 0; z < image.nz; ++z) {
      DcmFileFormat file;
      DcmDataset& ds = *file.getDataset();
      ds = base;
      auto put = [&](const DcmTagKey& tag, const std::string& value) {
        ds.putAndInsertString(tag, value.c_str());
      };
      put(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
      put(DCM_SeriesInstanceUID, series_uid);
      put(DCM_SeriesNumber, std::to_string(series_number + 1000));
      put(DCM_SeriesDescription, description.substr(0, 64));
      put(DCM_InstanceNumber, std::to_string(z + 1));
      put(DCM_ImageType, image_type);
      put(DCM_DerivationDescription, ("dcmstreams stream " + r.stream + ": " + r.derivation));
      put(DCM_ContentDate, date);
      put(DCM_ContentTime, time);
      put(DCM_SeriesDate, date);
      put(DCM_SeriesTime, time);
      put(DCM_Manufacturer, "dcmstreams");
      if (eight_bit) {
        put(DCM_DateOfSecondaryCapture, date);
        put(DCM_TimeOfSecondaryCapture, time);
        // Secondary Capture has no Image Plane module: the orientation goes here too.
        put(DCM_PatientOrientation, patient_orientation(image.row_direction) + "\\" +
                                        patient_orientation(image.column_direction));
      }
      vec3 position = image.position(0, 0, static_cast<double>(z));
      put(DCM_ImagePositionPatient, triplet(position));
      put(DCM_ImageOrientationPatient,
          triplet(image.row_direction) + "\\" + triplet(image.column_direction));
      put(DCM_PixelSpacing, decimal(image.spacing[1]) + "\\" + decimal(image.spacing[0]));
      put(DCM_SliceThickness, decimal(image.slice_thickness));
      put(DCM_SliceLocation, decimal(dot(position, image.slice_direction)));

      ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
      put(DCM_PhotometricInterpretation, "MONOCHROME2");
      ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(image.ny));
      ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(image.nx));
      std::size_t plane = image.nx * image.ny;
      const std::int16_t* voxels = image.voxels.data() + z * plane;
      if (eight_bit) {
        ds.putAndInsertUint16(DCM_BitsAllocated, 8);
        ds.putAndInsertUint16(DCM_BitsStored, 8);
        ds.putAndInsertUint16(DCM_HighBit, 7);
        ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
        std::vector<Uint8> bytes(plane);
        for (std::size_t i = 0; i < plane; ++i)
          bytes[i] = static_cast<Uint8>(voxels[i]);
        ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(plane));
      } else {
        ds.putAndInsertUint16(DCM_BitsAllocated, 16);
        ds.putAndInsertUint16(DCM_BitsStored, 16);
        ds.putAndInsertUint16(DCM_HighBit, 15);
        ds.putAndInsertUint16(DCM_PixelRepresentation, 1);
        std::vector<Sint16> values(plane);
        bool rescale_in_values = !modality_lut && (image.slope != 1 || image.intercept != 0);
        for (std::size_t i = 0; i < plane; ++i)
          values[i] = rescale_in_values ? image.stored(image.value(voxels[i])) : voxels[i];
        if (modality_lut) {
          put(DCM_RescaleIntercept, decimal(image.intercept));
          put(DCM_RescaleSlope, decimal(image.slope));
          if (source.modality == "CT")
            put(DCM_RescaleType, "HU");
        }
        // Pixel Data is OW: the signed values go in as their 16-bit patterns.
        ds.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(values.data()),
                                   static_cast<unsigned long>(plane));
      }

      // References back to every source image this slice was made from: those
      // within its thickness (a MIP slab's slices), else the nearest one.
      double here = dot(position, image.slice_direction);
      double half = std::max(image.slice_thickness, image.spacing[2]) / 2;
      std::vector<std::size_t> sources;
      std::size_t nearest = 0;
      double best = 1e300;
      for (std::size_t s = 0; s < source.files.size(); ++s) {
        double there =
            dot(source.image.position(0, 0, static_cast<double>(s)), source.image.slice_direction);
        double distance = std::abs(there - here);
        if (distance < half - 1e-6)
          sources.push_back(s);
        if (distance < best) {
          best = distance;
          nearest = s;
        }
      }
      if (sources.empty())
        sources.push_back(nearest);
      DcmItem* series_item = nullptr;
      ds.findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series_item, -2);
      if (series_item)
        series_item->putAndInsertString(DCM_SeriesInstanceUID, source.series_uid.c_str());
      for (auto s : sources) {
        DcmItem* source_item = nullptr;
        if (ds.findOrCreateSequenceItem(DCM_SourceImageSequence, source_item, -2).good()) {
          source_item->putAndInsertString(DCM_ReferencedSOPClassUID, source.sop_class_uid.c_str());
          source_item->putAndInsertString(DCM_ReferencedSOPInstanceUID,
                                          source.sop_instance_uids[s].c_str());
        }
        DcmItem* instance_item = nullptr;
        if (series_item &&
            series_item->findOrCreateSequenceItem(DCM_ReferencedInstanceSequence, instance_item, -2)
                .good()) {
          instance_item->putAndInsertString(DCM_ReferencedSOPClassUID,
                                            source.sop_class_uid.c_str());
          instance_item->putAndInsertString(DCM_ReferencedSOPInstanceUID,
                                            source.sop_instance_uids[s].c_str());
        }
      }
      if (r.deidentify_with)
        deidentify(ds, *r.deidentify_with);

      char name[32];
      std::snprintf(name, sizeof name, "%05zu.dcm", z + 1);
      auto path = r.out_dir / name;
      OFCondition cond = file.saveFile(path.c_str(), EXS_LittleEndianExplicit);
      if (cond.bad())
        return failure{ec::io_error, path.string() + ": cannot write: " + cond.text()};
      written.push_back(path);
    }
  } catch (const std::exception& e) {
    return failure{ec::invalid_dataset,
                   source.files.front().string() +
                       ": not a readable DICOM file: DCMTK threw: " + e.what()};
  }
  return written;
}

} // namespace dcmstreams
