// The dashboard's files (server/http/web/), compiled into the binary at build
// time, so the daemon serves its page with nothing fetched from elsewhere.
#ifndef NPYSTREAM_SERVER_HTTP_WEB_ASSETS_H_
#define NPYSTREAM_SERVER_HTTP_WEB_ASSETS_H_

#include "absl/strings/string_view.h"

namespace npystream {

struct WebAsset {
  absl::string_view name;          // path under web/, e.g. "app.js"
  absl::string_view content_type;  // from the extension
  absl::string_view body;
};

// The asset called `name`, or null. Thread-safe (static data).
const WebAsset* FindWebAsset(absl::string_view name);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_WEB_ASSETS_H_
