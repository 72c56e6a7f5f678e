// A job's image series and their pictures: which series INPUT and OUTPUT
// hold, and one slice of one of them as a PNG through a window, rendered by
// the node from the volume loader's reading (pipeline/imaging/preview.hpp)
// on the file pool and kept in the preview cache.

#include "web/api_context.hpp"
#include "web/handlers.hpp"
#include "web/preview_cache.hpp"

#include <functional>

namespace dcmstreams::web {

namespace {

const std::vector<std::string> job_folders = {"INPUT", "OUTPUT"};

// The viewer's default picture: large enough for a screen, bounded so that
// one request cannot ask the node for a huge PNG.
constexpr std::int64_t default_picture_size = 1024;
constexpr std::int64_t max_picture_size = 2048;

json::value series_view(const std::string& folder, const preview_series& s) {
  auto windows = json::value::array();
  for (auto& w : s.windows)
    windows.push_back({{"name", w.name}, {"center", w.center}, {"width", w.width}});
  json::value view = {{"folder", folder},         {"series_uid", s.series_uid},
                      {"modality", s.modality},   {"description", s.description},
                      {"slices", s.files.size()}, {"rows", s.rows},
                      {"columns", s.columns},     {"windows", std::move(windows)}};
  if (!s.not_shown.empty())
    view["not_shown"] = s.not_shown;
  return view;
}

} // namespace

void list_job_series(api_context& api, const route_call& call) {
  auto id = call.id("job");
  auto dir = api.layout.job_dir(id);
  if (!std::filesystem::is_directory(dir))
    return call.respond(error_response(404, "no job " + std::to_string(id)));
  bool queued = api.file_pool.try_post([&api, id, dir, respond = call.respond] {
    auto list = json::value::array();
    for (auto& folder : job_folders) {
      auto signature = sign_folder(dir / folder);
      for (auto& s : *api.previews.index(dir / folder, signature))
        list.push_back(series_view(folder, s));
    }
    respond(json_response(json::dump({{"job", id}, {"series", std::move(list)}})));
  });
  if (!queued)
    call.respond(busy("reading job folders"));
}

void get_series_preview(api_context& api, const route_call& call) {
  auto id = call.id("job");
  auto uid = call.param("series");
  auto dir = api.layout.job_dir(id);
  if (!std::filesystem::is_directory(dir))
    return call.respond(error_response(404, "no job " + std::to_string(id)));
  auto folder = query_value(call.request, "folder");
  if (!folder.empty() && folder != "INPUT" && folder != "OUTPUT")
    return call.respond(
        error_response(400, "folder \"" + folder + "\" is neither INPUT nor OUTPUT"));
  auto slice = query_number(call.request, "slice", -1, 0, 1 << 20);
  auto size = query_number(call.request, "size", default_picture_size, 16, max_picture_size);
  if (!slice)
    return call.respond(failure_response(slice.error()));
  if (!size)
    return call.respond(failure_response(size.error()));
  auto asked_window = query_value(call.request, "window");
  auto if_none_match = header_value(call.request, "if-none-match");
  bool queued = api.file_pool.try_post([&api, id, uid, dir, folder, slice = *slice, size = *size,
                                        asked_window, if_none_match, respond = call.respond] {
    for (auto& name : job_folders) {
      if (!folder.empty() && name != folder)
        continue;
      auto signature = sign_folder(dir / name);
      auto index = api.previews.index(dir / name, signature);
      auto found = std::find_if(index->begin(), index->end(),
                                [&](const preview_series& s) { return s.series_uid == uid; });
      if (found == index->end())
        continue;
      if (!found->not_shown.empty())
        return respond(error_response(422, "series " + uid + " in " + name +
                                               " cannot be shown: " + found->not_shown));
      auto count = static_cast<std::int64_t>(found->files.size());
      auto index_of_slice = slice < 0 ? count / 2 : slice;
      if (index_of_slice >= count)
        return respond(error_response(400, "slice " + std::to_string(index_of_slice) +
                                               " is not in the series' 0.." +
                                               std::to_string(count - 1)));
      auto window = choose_window(found->windows, asked_window);
      if (!window)
        return respond(failure_response(window.error()));
      auto key = (dir / name).string() + "|" + signature.key() + "|" + uid + "|" +
                 std::to_string(index_of_slice) + "|" + std::to_string(window->center) + "|" +
                 std::to_string(window->width) + "|" + std::to_string(size);
      auto etag = "\"" + std::to_string(std::hash<std::string>{}(key)) + "\"";
      http_response response;
      response.content_type = "image/png";
      // Pictures change when the job runs again: the browser asks each time
      // and gets 304 while they are the same.
      response.headers = {{"Cache-Control", "private, no-cache"}, {"ETag", etag}};
      if (if_none_match == etag) {
        response.status = 304;
        return respond(std::move(response));
      }
      auto picture = api.previews.picture(key);
      if (!picture) {
        auto rendered = render_png(found->files[static_cast<std::size_t>(index_of_slice)], *window,
                                   static_cast<unsigned>(size));
        if (!rendered)
          return respond(error_response(422, rendered.error().message));
        api.previews.keep_picture(key, *rendered);
        picture = std::move(*rendered);
      }
      response.body = std::move(*picture);
      return respond(std::move(response));
    }
    respond(error_response(404, "job " + std::to_string(id) + " has no series " + uid + " in " +
                                    (folder.empty() ? std::string("INPUT or OUTPUT") : folder)));
  });
  if (!queued)
    call.respond(busy("rendering previews"));
}

} // namespace dcmstreams::web
