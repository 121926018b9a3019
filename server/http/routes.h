// Routes of the admin port: what a request line asks for, decided apart from
// the connection that carries it (so it is unit-tested and fuzzed alone).
#ifndef NPYSTREAM_SERVER_HTTP_ROUTES_H_
#define NPYSTREAM_SERVER_HTTP_ROUTES_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/views/view_spec.h"

namespace npystream {

struct Route {
  enum Kind {
    kMetrics,           // GET /metrics
    kHealthz,           // GET /healthz
    kReadyz,            // GET /readyz
    kDashboard,         // GET / (token)
    kAsset,             // GET /static/{name}: the dashboard's code (token)
    kTensorList,        // GET /v1/tensors (token)
    kTensorNpy,         // GET /v1/tensors/{handle}.npy (token)
    kTensorInfo,        // GET /v1/tensors/{handle} (token): its info as JSON
    kModelList,         // GET /v1/models (token)
    kModelInfer,        // POST /v1/models/{model}/infer (token)
    kModelSubscribe,    // GET /v1/models/{model}/subscribe, a WebSocket upgrade (token)
    kOipServer,         // GET /v2: server metadata (token)
    kOipLive,           // GET /v2/health/live (no auth: a probe)
    kOipReady,          // GET /v2/health/ready (no auth: a probe)
    kOipModel,          // GET /v2/models/{model}[/versions/{v}]: metadata (token)
    kOipModelReady,     // GET /v2/models/{model}[/versions/{v}]/ready (token)
    kOipInfer,          // POST /v2/models/{model}[/versions/{v}]/infer (token)
    kNotFound,          // 404 with `error`
    kMethodNotAllowed,  // 405
  };
  Kind kind = kNotFound;
  std::string handle;   // kTensorNpy, kTensorInfo: percent-decoded, without ".npy"
  std::string model;    // kModel*, kOipModel*, kOipInfer: percent-decoded
  std::string version;  // kOip*: from /versions/{v}, else empty
  std::string asset;    // kAsset: the name under /static/
  std::string error;    // kNotFound, kMethodNotAllowed: the message
  std::string allow;    // kMethodNotAllowed: the method that is served
  // Decoded query parameters; the last of a repeated name wins.
  std::map<std::string, std::string> query;
  // Everything but /metrics, /healthz, /readyz and /v2/health/*: the token
  // (when configured) is checked first, even before a 404.
  bool needs_token = false;
};

// `target` is the request-target (path and optional query); `method` the
// request method ("GET", ...). Never fails: unknown paths are kNotFound.
Route MatchRoute(absl::string_view method, absl::string_view target);

// The view a query asks for: `<prefix>index`, `<prefix>dtype`, `<prefix>pool`
// (prefix "" on a download, "view.<layer>." on a subscription); absent
// parameters ask for nothing. INVALID_ARGUMENT for a pool that is not a
// number.
absl::StatusOr<views::ViewRequest> ViewFromQuery(const std::map<std::string, std::string>& query,
                                                 const std::string& prefix);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`); a malformed
// escape is kept as it is.
std::string PercentDecode(absl::string_view s, bool plus_is_space = false);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_ROUTES_H_
