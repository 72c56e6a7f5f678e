#pragma once
// The web UI's files (web/ui/), compiled into the binary so that the node
// serves them with no files beside it and no CDN (web/embed_ui.cmake).

#include <string_view>

namespace dcmstreams::web {

struct ui_asset {
  std::string_view content_type;
  std::string_view body;
};

/// The file at `path` ("/ui/app.js"), or null.
const ui_asset* find_ui_asset(std::string_view path);

} // namespace dcmstreams::web
