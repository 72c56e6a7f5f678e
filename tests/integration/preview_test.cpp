// Pictures of a job's series over HTTP: the series of INPUT and OUTPUT in
// the volume loader's slice order, each slice rendered to a PNG that equals
// DCMTK's own rendering (dcmimgle's DicomImage) through the same window,
// thumbnails in the image's proportions, and a clear reason for series that
// cannot be shown (JPEG 2000, no pixel data).

#include "pipeline/foundation/json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmimgle/dcmimage.h>

#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cstdlib>

using namespace dcmstreams;
using namespace dcmstreams::fixtures;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct grey_picture {
  unsigned width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

/// Decodes a PNG with libpng's simplified API as 8-bit grey.
std::optional<grey_picture> decode_png(const std::string& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
    return std::nullopt;
  image.format = PNG_FORMAT_GRAY;
  grey_picture picture{image.width, image.height, std::vector<std::uint8_t>(PNG_IMAGE_SIZE(image))};
  if (!png_image_finish_read(&image, nullptr, picture.pixels.data(), 0, nullptr))
    return std::nullopt;
  return picture;
}

/// DCMTK's rendering of `file` through the window, 8 bits per pixel.
grey_picture dcmtk_rendering(const fs::path& file, double center, double width) {
  DicomImage image{file.c_str()};
  EXPECT_EQ(image.getStatus(), EIS_Normal) << file;
  image.setWindow(center, width);
  grey_picture picture{
      static_cast<unsigned>(image.getWidth()), static_cast<unsigned>(image.getHeight()), {}};
  auto* data = static_cast<const std::uint8_t*>(image.getOutputData(8));
  picture.pixels.assign(data, data + std::size_t{picture.width} * picture.height);
  return picture;
}

/// A copy of `source` that belongs to `study_uid`, in its own transfer syntax.
void copy_into_study(const fs::path& source, const std::string& study_uid, const fs::path& target) {
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(source.c_str()).good()) << source;
  file.getDataset()->putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  fs::create_directories(target.parent_path());
  ASSERT_TRUE(file.saveFile(target.c_str(), file.getDataset()->getOriginalXfer()).good());
}

double slice_position(const fs::path& file) {
  DcmFileFormat format;
  EXPECT_TRUE(format.loadFile(file.c_str()).good());
  Float64 z = 0;
  format.getDataset()->findAndGetFloat64(DCM_ImagePositionPatient, z, 2);
  return z;
}

const json::value* find_series(const json::value& list, const std::string& folder,
                               const std::string& uid) {
  for (auto& s : list)
    if (s["folder"] == folder && s["series_uid"] == uid)
      return &s;
  return nullptr;
}

} // namespace

TEST(previews, slices_come_in_volume_order_and_look_as_dcmtk_renders_them) {
  temp_dir root, scratch;
  test_node node{root.path(), {}};
  write_stream(node.streams_dir(), "smooth", "SMOOTHAE",
               R"("pipeline": [{"kernel": "gaussian", "sigma_mm": 1.0}])");
  node.start();
  auto study = synth_study(scratch / "s", 5, 24, 1, {"--cols", "16"}) / "study1";
  auto slices = files_under(study / "series1");
  ASSERT_EQ(slices.size(), 5u);
  auto study_uid = attribute_text(slices[0], "StudyInstanceUID");
  auto series_uid = attribute_text(slices[0], "SeriesInstanceUID");
  auto pd = pydicom_test_files();
  copy_into_study(pd / "JPEG2000.dcm", study_uid, study / "other" / "j2k.dcm");
  copy_into_study(pd / "waveform_ecg.dcm", study_uid, study / "other" / "ecg.dcm");
  auto j2k_series = attribute_text(study / "other" / "j2k.dcm", "SeriesInstanceUID");
  auto ecg_series = attribute_text(study / "other" / "ecg.dcm", "SeriesInstanceUID");
  auto sent = run({"dcmsend", "-aec", "SMOOTHAE", "+sd", "+r", "127.0.0.1",
                   std::to_string(node.port()), study.string()});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  ASSERT_TRUE(node.wait_for_finished_jobs(1, 30s)) << node.log();

  auto listed = http_get(node.web_port(), "/api/v1/jobs/1/series");
  ASSERT_EQ(listed.status, 200) << listed.body;
  auto body = json::parse(listed.body, "series");
  ASSERT_TRUE(body);
  auto& list = (*body)["series"];
  auto* ct = find_series(list, "INPUT", series_uid);
  ASSERT_NE(ct, nullptr) << listed.body;
  EXPECT_EQ((*ct)["slices"], 5);
  EXPECT_EQ((*ct)["rows"], 24);
  EXPECT_EQ((*ct)["columns"], 16);
  EXPECT_EQ((*ct)["modality"], "CT");
  EXPECT_FALSE(ct->contains("not_shown"));
  std::vector<std::string> windows;
  for (auto& w : (*ct)["windows"])
    windows.push_back(w["name"].get<std::string>());
  ASSERT_GE(windows.size(), 3u) << listed.body;
  EXPECT_EQ((*ct)["windows"][0]["center"], 40.0) << "the data's own window comes first";
  EXPECT_NE(std::find(windows.begin(), windows.end(), "lung"), windows.end());
  EXPECT_EQ(windows.back(), "value range");
  auto* j2k = find_series(list, "INPUT", j2k_series);
  ASSERT_NE(j2k, nullptr) << listed.body;
  EXPECT_NE((*j2k).value("not_shown", "").find("JPEG 2000"), std::string::npos) << listed.body;
  auto* ecg = find_series(list, "INPUT", ecg_series);
  ASSERT_NE(ecg, nullptr) << listed.body;
  EXPECT_NE((*ecg).value("not_shown", "").find("no pixel data"), std::string::npos);
  std::size_t outputs = 0;
  for (auto& s : list)
    if (s["folder"] == "OUTPUT" && s["slices"] == 5 && !s.contains("not_shown"))
      ++outputs;
  EXPECT_EQ(outputs, 1u) << "the smoothed series: " << listed.body;

  // Slice i is the i-th along the slice normal, whatever order the files
  // were sent in; each looks as DCMTK renders it through the same window.
  auto stored = test_node::input_files(node.job_dirs().at(0));
  std::vector<fs::path> ct_files;
  for (auto& f : stored)
    if (attribute_text(f, "SeriesInstanceUID") == series_uid)
      ct_files.push_back(f);
  std::sort(ct_files.begin(), ct_files.end(),
            [](auto& a, auto& b) { return slice_position(a) < slice_position(b); });
  ASSERT_EQ(ct_files.size(), 5u);
  auto base = "/api/v1/jobs/1/series/" + series_uid + "/preview.png";
  for (std::size_t i = 0; i < ct_files.size(); ++i) {
    auto reply = http_get(node.web_port(),
                          base + "?folder=INPUT&slice=" + std::to_string(i) + "&window=-100,700");
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(reply.headers["content-type"], "image/png");
    auto picture = decode_png(reply.body);
    ASSERT_TRUE(picture) << "slice " << i;
    auto expected = dcmtk_rendering(ct_files[i], -100, 700);
    ASSERT_EQ(picture->width, expected.width);
    ASSERT_EQ(picture->height, expected.height);
    int worst = 0;
    for (std::size_t p = 0; p < expected.pixels.size(); ++p)
      worst = std::max(worst, std::abs(int(picture->pixels[p]) - int(expected.pixels[p])));
    EXPECT_LE(worst, 1) << "slice " << i << " differs from DCMTK's rendering";
  }

  // A thumbnail keeps the proportions; the default is the middle slice in
  // the data's own window; the browser's copy is confirmed with 304.
  auto thumbnail = http_get(node.web_port(), base + "?size=18");
  ASSERT_EQ(thumbnail.status, 200) << thumbnail.body;
  auto small = decode_png(thumbnail.body);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->width, 12u);
  EXPECT_EQ(small->height, 18u);
  auto middle = decode_png(http_get(node.web_port(), base).body);
  ASSERT_TRUE(middle);
  auto expected_middle = dcmtk_rendering(ct_files[2], 40, 400);
  ASSERT_EQ(middle->pixels.size(), expected_middle.pixels.size());
  int worst = 0;
  for (std::size_t p = 0; p < middle->pixels.size(); ++p)
    worst = std::max(worst, std::abs(int(middle->pixels[p]) - int(expected_middle.pixels[p])));
  EXPECT_LE(worst, 1);
  auto etag = thumbnail.headers["etag"];
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(http_get(node.web_port(), base + "?size=18", {{"If-None-Match", etag}}).status, 304);
  EXPECT_EQ(http_get(node.web_port(), base + "?window=lung").status, 200);

  // Wrong requests say what is wrong.
  auto past_end = http_get(node.web_port(), base + "?slice=5");
  EXPECT_EQ(past_end.status, 400);
  EXPECT_NE(past_end.body.find("0..4"), std::string::npos) << past_end.body;
  auto bad_window = http_get(node.web_port(), base + "?window=sideways");
  EXPECT_EQ(bad_window.status, 400);
  EXPECT_NE(bad_window.body.find("soft tissue"), std::string::npos) << bad_window.body;
  EXPECT_EQ(http_get(node.web_port(), base + "?folder=ELSEWHERE").status, 400);
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/jobs/1/series/1.2.3/preview.png").status, 404);
  EXPECT_EQ(http_get(node.web_port(), "/api/v1/jobs/9/series").status, 404);
  auto undecodable =
      http_get(node.web_port(), "/api/v1/jobs/1/series/" + j2k_series + "/preview.png");
  EXPECT_EQ(undecodable.status, 422);
  EXPECT_NE(undecodable.body.find("JPEG 2000"), std::string::npos) << undecodable.body;
  EXPECT_TRUE(node.running());
}
