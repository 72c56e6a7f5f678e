#include "pipeline/dicom/dicom_file.hpp"
#include "pipeline/dicom/dcmtk_file.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <chrono>
#include <ctime>
#include <fstream>

namespace dcmstreams {

namespace {

constexpr Uint32 max_loaded_value_length = 4096;

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).good())
    return std::string(value.c_str());
  return {};
}

void read_meta(DcmMetaInfo& meta, instance_header& header) {
  header.transfer_syntax_uid = get_string(meta, DCM_TransferSyntaxUID);
  header.source_ae = get_string(meta, DCM_SourceApplicationEntityTitle);
  header.sending_ae = get_string(meta, DCM_SendingApplicationEntityTitle);
  header.receiving_ae = get_string(meta, DCM_ReceivingApplicationEntityTitle);
  header.sending_address = get_string(meta, DCM_SendingPresentationAddress);
  header.sop_class_uid = get_string(meta, DCM_MediaStorageSOPClassUID);
  header.sop_instance_uid = get_string(meta, DCM_MediaStorageSOPInstanceUID);
}

failure parse_failure(const std::filesystem::path& path, const std::string& why) {
  return failure{ec::invalid_dataset, path.string() + ": not a readable DICOM file: " + why};
}

} // namespace

namespace {

instance_header header_of(DcmFileFormat& file) {
  instance_header header;
  read_meta(*file.getMetaInfo(), header);
  DcmDataset& data = *file.getDataset();
  header.study_uid = get_string(data, DCM_StudyInstanceUID);
  header.series_uid = get_string(data, DCM_SeriesInstanceUID);
  header.modality = get_string(data, DCM_Modality);
  header.series_description = get_string(data, DCM_SeriesDescription);
  auto sop_class = get_string(data, DCM_SOPClassUID);
  auto sop_instance = get_string(data, DCM_SOPInstanceUID);
  if (!sop_class.empty())
    header.sop_class_uid = sop_class;
  if (!sop_instance.empty())
    header.sop_instance_uid = sop_instance;
  if (header.transfer_syntax_uid.empty())
    header.transfer_syntax_uid = DcmXfer(data.getOriginalXfer()).getXferID();
  return header;
}

} // namespace

status load_dicom_file(DcmFileFormat& file, const std::filesystem::path& path,
                       std::uint32_t max_value_length) {
  try {
    OFCondition cond =
        file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, max_value_length, ERM_autoDetect);
    if (cond.bad())
      return parse_failure(path, cond.text());
    return std::nullopt;
  } catch (const std::exception& e) {
    return parse_failure(path, std::string("DCMTK threw: ") + e.what());
  }
}

result<instance_header> read_instance_header(const std::filesystem::path& path) {
  try {
    DcmFileFormat file;
    if (auto problem = load_dicom_file(file, path, max_loaded_value_length))
      return *problem;
    return header_of(file);
  } catch (const std::exception& e) {
    return parse_failure(path, std::string("DCMTK threw: ") + e.what());
  }
}

namespace {

// A data set held in memory, read so that values above the header reader's
// limit stay unread, as they do in a file. DCMTK defers a long value only
// when its stream can make a factory to read it again later; a plain buffer
// stream cannot, and DCMTK then allocates whatever the element's length
// claims before it finds the bytes missing (4 GB for a 162-byte data set
// that says so: tests/fuzz/seeds/dataset/huge_declared_length), and copies
// every pixel value it does find. The factory reads the same bytes again if
// a deferred value is ever asked for; the header reader never asks.
class memory_stream : public DcmInputBufferStream {
public:
  explicit memory_stream(std::string_view bytes) : bytes_(bytes) {
    setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
    setEos();
  }
  DcmInputStreamFactory* newFactory() const override { return new factory(bytes_, tell()); }

private:
  class factory : public DcmInputStreamFactory {
  public:
    factory(std::string_view bytes, offile_off_t position) : bytes_(bytes), position_(position) {}
    DcmInputStream* create() const override {
      auto* stream = new memory_stream(bytes_);
      stream->skip(position_);
      return stream;
    }
    DcmInputStreamFactory* clone() const override { return new factory(*this); }
    // The closest kind DCMTK knows: a stream it may open again at will.
    DcmInputStreamFactoryType ident() const override { return DFT_DcmInputFileStreamFactory; }

  private:
    std::string_view bytes_;
    offile_off_t position_;
  };

  std::string_view bytes_;
};

} // namespace

result<instance_header> read_instance_header(std::string_view bytes, const std::string& name) {
  try {
    memory_stream stream{bytes};
    DcmFileFormat file;
    file.transferInit();
    OFCondition cond = file.read(stream, EXS_Unknown, EGL_noChange, max_loaded_value_length);
    file.transferEnd();
    if (cond.bad())
      return parse_failure(name, cond.text());
    return header_of(file);
  } catch (const std::exception& e) {
    return parse_failure(name, std::string("DCMTK threw: ") + e.what());
  }
}

result<instance_header> read_file_meta(const std::filesystem::path& path) {
  try {
    DcmMetaInfo meta;
    OFCondition cond = meta.loadFile(path.c_str());
    if (cond.bad())
      return parse_failure(path, cond.text());
    instance_header header;
    read_meta(meta, header);
    return header;
  } catch (const std::exception& e) {
    return parse_failure(path, std::string("DCMTK threw: ") + e.what());
  }
}

bool looks_like_dicom(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  char head[132];
  return in.read(head, sizeof head) && std::string(head + 128, 4) == "DICM";
}

dicom_date_time dicom_now() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char date[16], time[16];
  std::strftime(date, sizeof date, "%Y%m%d", &local);
  std::strftime(time, sizeof time, "%H%M%S", &local);
  return {date, time};
}

status check_dicom_dictionary() {
  if (!dcmDataDict.isDictionaryLoaded())
    return failure{ec::invalid_config,
                   "DCMTK's DICOM data dictionary is not loaded; install the libdcmtk17 package, "
                   "or unset DCMDICTPATH if it points to a wrong file"};
  return std::nullopt;
}

std::string host_of_presentation_address(const std::string& address) {
  const std::string scheme = "dicom://";
  if (address.rfind(scheme, 0) != 0)
    return address;
  auto rest = address.substr(scheme.size());
  if (!rest.empty() && rest.front() == '[') { // IPv6 literal
    auto close = rest.find(']');
    return close == std::string::npos ? rest : rest.substr(1, close - 1);
  }
  return rest.substr(0, rest.rfind(':'));
}

std::string transfer_syntax_name(const std::string& uid) {
  DcmXfer xfer(uid.c_str());
  if (xfer.getXfer() == EXS_Unknown)
    return uid;
  return xfer.getXferName();
}

} // namespace dcmstreams
