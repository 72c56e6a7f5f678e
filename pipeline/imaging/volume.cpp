#include "pipeline/imaging/volume.hpp"

#include "pipeline/dicom/dcmtk_file.hpp"

#include "pipeline/dicom/codecs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>

namespace dcmstreams {

namespace {
constexpr std::size_t huge_page = std::size_t{2} << 20;
} // namespace

void* allocate_voxel_bytes(std::size_t bytes) {
  if (bytes < huge_page)
    return ::operator new(bytes);
  std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
  void* p = std::aligned_alloc(huge_page, rounded);
  if (!p)
    throw std::bad_alloc{};
  // Advice only: without transparent huge pages the buffer works as any.
  ::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void free_voxel_bytes(void* p, std::size_t bytes) noexcept {
  if (bytes < huge_page)
    ::operator delete(p);
  else
    std::free(p);
}

vec3 cross(const vec3& a, const vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const vec3& a, const vec3& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

std::int16_t volume::stored(double real) const {
  double raw = std::round((real - intercept) / slope);
  return static_cast<std::int16_t>(std::clamp(raw, -32768.0, 32767.0));
}

vec3 volume::position(double x, double y, double z) const {
  vec3 p;
  for (int i = 0; i < 3; ++i)
    p[i] = origin[i] + x * spacing[0] * row_direction[i] + y * spacing[1] * column_direction[i] +
           z * spacing[2] * slice_direction[i];
  return p;
}

namespace {

std::optional<std::vector<double>> numbers(DcmItem& item, const DcmTagKey& tag) {
  OFString text;
  if (item.findAndGetOFStringArray(tag, text).bad() || text.empty())
    return std::nullopt;
  std::vector<double> values;
  std::string s{text.c_str()};
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find('\\', start);
    try {
      values.push_back(std::stod(s.substr(start, end - start)));
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return values;
}

std::string text(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  item.findAndGetOFStringArray(tag, value);
  return value.c_str();
}

} // namespace

// Values above this stay on disk when only the header is wanted.
constexpr std::uint32_t header_value_limit = 4096;

result<std::optional<image_slice>> read_image_slice(const std::filesystem::path& path,
                                                    std::string& why, bool with_pixels) {
  using slice = image_slice;
  try {
    DcmFileFormat file;
    if (auto problem =
            load_dicom_file(file, path, with_pixels ? DCM_MaxReadLength : header_value_limit))
      return *problem;
    DcmDataset& ds = *file.getDataset();
    slice s;
    s.file = path;
    s.sop_uid = text(ds, DCM_SOPInstanceUID);
    s.series_uid = text(ds, DCM_SeriesInstanceUID);
    s.modality = text(ds, DCM_Modality);
    s.sop_class_uid = text(ds, DCM_SOPClassUID);
    s.series_description = text(ds, DCM_SeriesDescription);
    if (!ds.tagExists(DCM_PixelData)) {
      why = "no pixel data";
      return std::optional<slice>{};
    }
    Uint16 samples = 1, rows = 0, cols = 0, bits_allocated = 0, representation = 0;
    ds.findAndGetUint16(DCM_SamplesPerPixel, samples);
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, cols);
    ds.findAndGetUint16(DCM_BitsAllocated, bits_allocated);
    ds.findAndGetUint16(DCM_PixelRepresentation, representation);
    long frames = 1;
    if (auto n = numbers(ds, DCM_NumberOfFrames))
      frames = static_cast<long>(n->front());
    if (samples != 1) {
      why = "colour images (SamplesPerPixel " + std::to_string(samples) + ") are not volumes";
      return std::optional<slice>{};
    }
    if (frames != 1) {
      why = "multi-frame images (" + std::to_string(frames) + " frames) are not supported";
      return std::optional<slice>{};
    }
    if (bits_allocated != 8 && bits_allocated != 16) {
      why = "BitsAllocated " + std::to_string(bits_allocated) + " is not supported";
      return std::optional<slice>{};
    }
    E_TransferSyntax original = ds.getOriginalXfer();
    std::string syntax = DcmXfer(original).getXferName();
    if (DcmXfer(original).isEncapsulated()) {
      register_dicom_codecs();
      if (!DcmCodecList::canChangeCoding(original, EXS_LittleEndianExplicit))
        return failure{ec::unsupported, path.string() + ": cannot decode its pixel data in " +
                                            syntax + " (no codec for it in this DCMTK)"};
    }
    if (with_pixels && DcmXfer(original).isEncapsulated()) {
      OFCondition decoded = ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
      if (decoded.bad() || !ds.canWriteXfer(EXS_LittleEndianExplicit)) {
        Uint16 bits_stored = 0;
        ds.findAndGetUint16(DCM_BitsStored, bits_stored);
        DcmXfer xfer{original};
        // Lossy JPEG (processes 1, 2 and 4) holds at most 12 bits per
        // sample; some writers put 16-bit data in it anyway.
        bool lossy_jpeg =
            xfer.isLossy() && std::string(xfer.getXferID()).rfind("1.2.840.10008.1.2.4.5", 0) == 0;
        std::string why = lossy_jpeg && bits_stored > 12
                              ? "lossy JPEG holds at most 12 bits per sample, and this one has "
                                "BitsStored " +
                                    std::to_string(bits_stored) +
                                    " (written by a tool that does not follow the standard)"
                              : std::string("the codec refused it: ") + decoded.text();
        return failure{ec::unsupported,
                       path.string() + ": cannot decode its pixel data in " + syntax + ": " + why};
      }
    }
    s.rows = rows;
    s.cols = cols;
    s.is_signed = representation == 1;
    s.inverted = text(ds, DCM_PhotometricInterpretation) == "MONOCHROME1";
    std::size_t count = std::size_t{rows} * cols;
    // Uncompressed pixel data must hold rows x columns samples; anything
    // else is usually compressed data under an uncompressed label.
    if (!DcmXfer(original).isEncapsulated()) {
      DcmElement* pixels = nullptr;
      std::size_t expected = count * (bits_allocated / 8);
      if (ds.findAndGetElement(DCM_PixelData, pixels).good() && pixels &&
          pixels->getLength() < expected) {
        std::string start;
        Uint8* bytes = nullptr;
        if (pixels->getUint8Array(bytes).good() && bytes && pixels->getLength() >= 4 &&
            bytes[0] == 0xff && bytes[1] == 0xd8)
          start = "; it starts with a JPEG marker (FF D8): compressed data labelled as " +
                  std::string(DcmXfer(original).getXferName());
        return failure{ec::invalid_dataset,
                       path.string() + ": its pixel data holds " +
                           std::to_string(pixels->getLength()) + " bytes, not the " +
                           std::to_string(expected) + " that " + std::to_string(rows) + " x " +
                           std::to_string(cols) + " uncompressed " +
                           std::to_string(bits_allocated) + "-bit samples take" + start};
      }
    }
    if (with_pixels && bits_allocated == 16) {
      s.raw.resize(count);
      const Uint16* data = nullptr;
      if (ds.findAndGetUint16Array(DCM_PixelData, data).bad() || !data)
        return failure{ec::invalid_dataset, path.string() + ": pixel data cannot be read"};
      for (std::size_t i = 0; i < count; ++i)
        s.raw[i] = s.is_signed ? static_cast<std::int32_t>(static_cast<Sint16>(data[i])) : data[i];
    } else if (with_pixels) {
      s.raw.resize(count);
      const Uint8* data = nullptr;
      if (ds.findAndGetUint8Array(DCM_PixelData, data).bad() || !data)
        return failure{ec::invalid_dataset, path.string() + ": pixel data cannot be read"};
      for (std::size_t i = 0; i < count; ++i)
        s.raw[i] = s.is_signed ? static_cast<std::int32_t>(static_cast<Sint8>(data[i])) : data[i];
    }
    if (auto p = numbers(ds, DCM_ImagePositionPatient); p && p->size() == 3)
      s.position = vec3{(*p)[0], (*p)[1], (*p)[2]};
    if (auto o = numbers(ds, DCM_ImageOrientationPatient); o && o->size() == 6)
      s.orientation = std::array<double, 6>{(*o)[0], (*o)[1], (*o)[2], (*o)[3], (*o)[4], (*o)[5]};
    if (auto sp = numbers(ds, DCM_PixelSpacing); sp && sp->size() == 2)
      s.pixel_spacing = {(*sp)[0], (*sp)[1], 0};
    if (auto t = numbers(ds, DCM_SliceThickness))
      s.thickness = t->front();
    if (auto n = numbers(ds, DCM_InstanceNumber))
      s.instance_number = static_cast<long>(n->front());
    if (auto v = numbers(ds, DCM_RescaleSlope); v && v->front() != 0)
      s.slope = v->front();
    if (auto v = numbers(ds, DCM_RescaleIntercept))
      s.intercept = v->front();
    auto centers = numbers(ds, DCM_WindowCenter);
    auto widths = numbers(ds, DCM_WindowWidth);
    for (std::size_t i = 0; centers && widths && i < std::min(centers->size(), widths->size());
         ++i) {
      OFString explanation;
      ds.findAndGetOFString(DCM_WindowCenterWidthExplanation, explanation,
                            static_cast<unsigned long>(i));
      if ((*widths)[i] >= 1)
        s.windows.push_back({explanation.empty() ? "window " + std::to_string(i + 1)
                                                 : std::string(explanation.c_str()),
                             (*centers)[i], (*widths)[i]});
    }
    return std::optional<slice>{std::move(s)};
  } catch (const std::exception& e) {
    return failure{ec::invalid_dataset,
                   path.string() + ": not a readable DICOM file: DCMTK threw: " + e.what()};
  }
}

namespace {

// A series' directions, from its first slice's ImageOrientationPatient.
struct slice_axes {
  vec3 row{1, 0, 0}, column{0, 1, 0}, normal{0, 0, 1};
};

slice_axes axes_of(const image_slice& first) {
  slice_axes axes;
  if (first.orientation) {
    auto& o = *first.orientation;
    axes.row = {o[0], o[1], o[2]};
    axes.column = {o[3], o[4], o[5]};
  }
  axes.normal = cross(axes.row, axes.column);
  return axes;
}

bool all_positioned(const std::vector<image_slice>& slices) {
  return std::all_of(slices.begin(), slices.end(), [](auto& s) { return s.position; });
}

} // namespace

void sort_slices(std::vector<image_slice>& slices) {
  if (slices.empty())
    return;
  auto normal = axes_of(slices.front()).normal;
  if (all_positioned(slices))
    std::stable_sort(slices.begin(), slices.end(), [&](const image_slice& a, const image_slice& b) {
      return dot(*a.position, normal) < dot(*b.position, normal);
    });
  else
    std::stable_sort(slices.begin(), slices.end(), [](const image_slice& a, const image_slice& b) {
      return a.instance_number < b.instance_number;
    });
}

namespace {

using slice = image_slice;

result<series_volume> assemble(std::vector<slice> slices) {
  auto& first = slices.front();
  for (auto& s : slices)
    if (s.rows != first.rows || s.cols != first.cols)
      return failure{ec::invalid_dataset, s.file.string() + ": " + std::to_string(s.rows) + "x" +
                                              std::to_string(s.cols) + " differs from " +
                                              std::to_string(first.rows) + "x" +
                                              std::to_string(first.cols) + " of " +
                                              first.file.string() + " in the same series"};
  volume v;
  auto [row, column, normal] = axes_of(first);
  bool positioned = all_positioned(slices);
  sort_slices(slices);

  v.nx = first.cols;
  v.ny = first.rows;
  v.nz = slices.size();
  v.row_direction = row;
  v.column_direction = column;
  v.slice_direction = normal;
  v.spacing = {first.pixel_spacing[1], first.pixel_spacing[0], 0};
  v.slice_thickness = first.thickness;
  if (positioned && slices.size() > 1) {
    std::vector<double> gaps;
    for (std::size_t i = 1; i < slices.size(); ++i)
      gaps.push_back(dot(*slices[i].position, normal) - dot(*slices[i - 1].position, normal));
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    v.spacing[2] = gaps[gaps.size() / 2];
  }
  if (v.spacing[2] <= 0)
    v.spacing[2] = first.thickness > 0 ? first.thickness : 1.0;
  if (v.slice_thickness <= 0)
    v.slice_thickness = v.spacing[2];
  v.origin = first.position.value_or(vec3{0, 0, 0});

  // One scale for the volume: the slices' own if they share it and their
  // stored values fit int16 (exact), else real values rounded.
  bool shared_scale = std::all_of(slices.begin(), slices.end(), [&](const slice& s) {
    return s.slope == first.slope && s.intercept == first.intercept;
  });
  double low = 0, high = 0;
  for (auto& s : slices)
    for (std::int32_t r : s.raw) {
      low = std::min<double>(low, r);
      high = std::max<double>(high, r);
    }
  double shift = 0;
  if (shared_scale && high > 32767 && high - low <= 65535)
    shift = low + 32768; // unsigned data above int16: store raw - shift
  bool exact = shared_scale && high - shift <= 32767 && low - shift >= -32768;
  v.slope = exact ? first.slope : 1;
  v.intercept = exact ? first.intercept + shift * first.slope : 0;
  v.is_signed = true;
  v.voxels.resize(v.size());
  series_volume out;
  for (std::size_t z = 0; z < slices.size(); ++z) {
    auto& s = slices[z];
    auto* target = v.voxels.data() + z * v.nx * v.ny;
    for (std::size_t i = 0; i < s.raw.size(); ++i) {
      double stored = exact ? s.raw[i] - shift : std::round(s.raw[i] * s.slope + s.intercept);
      target[i] = static_cast<std::int16_t>(std::clamp(stored, -32768.0, 32767.0));
    }
    out.files.push_back(s.file);
    out.sop_instance_uids.push_back(s.sop_uid);
  }
  out.series_uid = first.series_uid;
  out.modality = first.modality;
  out.sop_class_uid = first.sop_class_uid;
  out.image = std::move(v);
  return out;
}

} // namespace

result<loaded_series> load_series(const std::vector<std::filesystem::path>& files) {
  loaded_series loaded;
  std::map<std::string, std::vector<slice>> by_series;
  std::optional<failure> first_unreadable;
  for (auto& file : files) {
    std::string why;
    auto read = read_image_slice(file, why);
    if (!read) {
      // One bad instance must not cost the study: it is left out and named.
      loaded.unreadable.push_back(read.error().message);
      if (!first_unreadable)
        first_unreadable = read.error();
      continue;
    }
    if (!*read) {
      loaded.skipped.push_back(file.string() + ": " + why);
      continue;
    }
    auto s = std::move(**read);
    by_series[s.series_uid].push_back(std::move(s));
  }
  if (by_series.empty() && first_unreadable)
    return *first_unreadable; // nothing readable at all: say why
  for (auto& [uid, slices] : by_series) {
    auto assembled = assemble(std::move(slices));
    if (!assembled)
      return assembled.error();
    loaded.series.push_back(std::move(*assembled));
  }
  return loaded;
}

} // namespace dcmstreams
