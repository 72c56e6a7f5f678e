#include "pipeline/imaging/preview.hpp"

#include "pipeline/dicom/dicom_file.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

namespace dcmstreams {

namespace {

// Presets in Hounsfield units, as radiology viewers offer them.
const std::vector<named_window> ct_presets = {
    {"soft tissue", 40, 400}, {"lung", -600, 1500}, {"bone", 400, 1800}, {"brain", 40, 80}};

// The range that holds all but the extreme 0.5 % of values at each end, so
// that a few outliers (metal, padding) do not leave the picture grey.
std::optional<named_window> value_range(const image_slice& s) {
  if (s.raw.empty())
    return std::nullopt;
  std::vector<std::int32_t> values = s.raw;
  auto low_at = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 200);
  auto high_at =
      values.begin() + static_cast<std::ptrdiff_t>(values.size() - 1 - values.size() / 200);
  std::nth_element(values.begin(), low_at, values.end());
  double low = *low_at * s.slope + s.intercept;
  std::nth_element(values.begin(), high_at, values.end());
  double high = *high_at * s.slope + s.intercept;
  if (high < low)
    std::swap(high, low);
  double width = std::max(1.0, high - low + 1);
  return named_window{"value range", low + width / 2 - 0.5, width};
}

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

} // namespace

std::vector<preview_series> index_series(const std::vector<std::filesystem::path>& files) {
  std::map<std::string, std::vector<image_slice>> images;
  std::map<std::string, preview_series> series;
  std::vector<std::string> order; // series in the order first met
  auto entry = [&](const std::string& uid, const std::string& modality,
                   const std::string& description) -> preview_series& {
    auto [it, added] = series.try_emplace(uid);
    if (added) {
      order.push_back(uid);
      it->second.series_uid = uid;
      it->second.modality = modality;
      it->second.description = description;
    }
    return it->second;
  };
  for (auto& file : files) {
    std::string why;
    auto read = read_image_slice(file, why, false);
    if (read && *read) {
      auto& s = **read;
      entry(s.series_uid, s.modality, s.series_description);
      images[s.series_uid].push_back(std::move(s));
      continue;
    }
    // Not an image a volume is made of, or one that cannot be decoded here:
    // its series is listed with the reason.
    auto header = read_instance_header(file);
    if (!header)
      continue;
    auto& listed = entry(header->series_uid, header->modality, header->series_description);
    if (listed.not_shown.empty())
      listed.not_shown = read ? why : read.error().message;
    listed.files.push_back(file);
  }
  std::vector<preview_series> out;
  for (auto& uid : order) {
    auto& listed = series[uid];
    auto& slices = images[uid];
    if (!listed.not_shown.empty() || slices.empty()) {
      // A series is shown whole or not at all: its slices would not line up.
      for (auto& s : slices)
        listed.files.push_back(s.file);
      out.push_back(std::move(listed));
      continue;
    }
    sort_slices(slices);
    for (auto& s : slices)
      listed.files.push_back(s.file);
    listed.rows = slices.front().rows;
    listed.columns = slices.front().cols;
    listed.windows = slices.front().windows;
    if (listed.modality == "CT")
      listed.windows.insert(listed.windows.end(), ct_presets.begin(), ct_presets.end());
    std::string why;
    auto middle = read_image_slice(listed.files[listed.files.size() / 2], why, true);
    if (!middle || !*middle) {
      listed.not_shown = middle ? why : middle.error().message;
      listed.windows.clear();
    } else if (auto range = value_range(**middle)) {
      listed.windows.push_back(*range);
    }
    out.push_back(std::move(listed));
  }
  return out;
}

result<named_window> choose_window(const std::vector<named_window>& windows,
                                   const std::string& asked) {
  if (asked.empty()) {
    if (windows.empty())
      return failure{ec::invalid_argument, "the series has no window to show it in"};
    return windows.front();
  }
  for (auto& w : windows)
    if (w.name == asked)
      return w;
  auto comma = asked.find(',');
  if (comma != std::string::npos) {
    try {
      std::size_t used_center = 0, used_width = 0;
      double center = std::stod(asked.substr(0, comma), &used_center);
      double width = std::stod(asked.substr(comma + 1), &used_width);
      if (used_center == comma && used_width == asked.size() - comma - 1 && width >= 1 &&
          std::isfinite(center) && std::isfinite(width))
        return named_window{number_text(center) + "," + number_text(width), center, width};
    } catch (const std::exception&) {
    }
  }
  std::string names;
  for (auto& w : windows)
    names += (names.empty() ? "\"" : ", \"") + w.name + "\"";
  return failure{ec::invalid_argument, "window \"" + asked +
                                           "\" is neither one of the series' windows (" +
                                           (names.empty() ? std::string("none") : names) +
                                           ") nor CENTER,WIDTH with a width of at least 1"};
}

namespace {

struct png_writer {
  std::string bytes;
  std::string error;
};

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<png_writer*>(png_get_io_ptr(png));
  out->bytes.append(reinterpret_cast<const char*>(data), length);
}

void flush_nothing(png_structp) {}

void on_png_error(png_structp png, png_const_charp message) {
  static_cast<png_writer*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

result<std::string> encode_grey_png(const std::vector<std::uint8_t>& pixels, unsigned width,
                                    unsigned height) {
  png_writer out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &out, on_png_error, nullptr);
  if (!png)
    return failure{ec::io_error, "libpng cannot start a PNG"};
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows(height);
  for (unsigned y = 0; y < height; ++y)
    rows[y] = const_cast<png_bytep>(pixels.data() + std::size_t{y} * width);
  // libpng reports errors by longjmp: nothing here owns memory across it.
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return failure{ec::io_error, "libpng failed to write the PNG: " + out.error};
  }
  png_set_write_fn(png, &out, append_bytes, flush_nothing);
  // Pictures for a screen, made on request: speed over the last few bytes.
  png_set_compression_level(png, 3);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_rows(png, info, rows.data());
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  png_destroy_write_struct(&png, &info);
  return std::move(out.bytes);
}

} // namespace

result<std::string> render_png(const std::filesystem::path& file, const named_window& window,
                               unsigned max_size) {
  std::string why;
  auto read = read_image_slice(file, why, true);
  if (!read)
    return read.error();
  if (!*read)
    return failure{ec::unsupported, file.string() + ": no picture: " + why};
  auto& s = **read;
  // PS3.3 C.11.2.1.2.1: the linear VOI LUT function.
  double c = window.center - 0.5, w = window.width - 1;
  std::vector<std::uint8_t> grey(s.raw.size());
  for (std::size_t i = 0; i < s.raw.size(); ++i) {
    double x = s.raw[i] * s.slope + s.intercept;
    double y = w <= 0 ? (x > c ? 255.0 : 0.0) : ((x - c) / w + 0.5) * 255.0;
    auto v = static_cast<std::uint8_t>(std::clamp(std::lround(y), 0L, 255L));
    grey[i] = s.inverted ? static_cast<std::uint8_t>(255 - v) : v;
  }
  // True proportions: a pixel is pixel_spacing[1] wide and [0] high.
  double row_spacing = s.pixel_spacing[0] > 0 ? s.pixel_spacing[0] : 1;
  double column_spacing = s.pixel_spacing[1] > 0 ? s.pixel_spacing[1] : 1;
  double unit = std::min(row_spacing, column_spacing);
  double width_units = s.cols * column_spacing / unit;
  double height_units = s.rows * row_spacing / unit;
  double scale = std::min(1.0, max_size / std::max(width_units, height_units));
  auto out_width = static_cast<unsigned>(std::max(1L, std::lround(width_units * scale)));
  auto out_height = static_cast<unsigned>(std::max(1L, std::lround(height_units * scale)));
  if (out_width == s.cols && out_height == s.rows)
    return encode_grey_png(grey, out_width, out_height);
  // Each output pixel averages the source pixels it covers (nearest when it
  // covers less than one).
  double step_x = double(s.cols) / out_width, step_y = double(s.rows) / out_height;
  std::vector<std::uint8_t> scaled(std::size_t{out_width} * out_height);
  for (unsigned oy = 0; oy < out_height; ++oy) {
    auto y0 = static_cast<unsigned>(oy * step_y);
    auto y1 = std::clamp(static_cast<unsigned>((oy + 1) * step_y), y0 + 1, s.rows);
    for (unsigned ox = 0; ox < out_width; ++ox) {
      auto x0 = static_cast<unsigned>(ox * step_x);
      auto x1 = std::clamp(static_cast<unsigned>((ox + 1) * step_x), x0 + 1, s.cols);
      unsigned sum = 0;
      for (unsigned y = y0; y < y1; ++y)
        for (unsigned x = x0; x < x1; ++x)
          sum += grey[std::size_t{y} * s.cols + x];
      scaled[std::size_t{oy} * out_width + ox] =
          static_cast<std::uint8_t>(sum / ((y1 - y0) * (x1 - x0)));
    }
  }
  return encode_grey_png(scaled, out_width, out_height);
}

} // namespace dcmstreams
