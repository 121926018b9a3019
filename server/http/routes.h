// Routes of the admin port: what a request line asks for, decided apart from
// the connection that carries it (so it is unit-tested and fuzzed alone).
#ifndef NPYSTREAM_SERVER_HTTP_ROUTES_H_
#define NPYSTREAM_SERVER_HTTP_ROUTES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace npystream {

struct Route {
  enum Kind {
    kMetrics,           // GET /metrics
    kHealthz,           // GET /healthz
    kReadyz,            // GET /readyz
    kTensorList,        // GET /v1/tensors (token)
    kTensorNpy,         // GET /v1/tensors/{handle}.npy (token)
    kNotFound,          // 404 with `error`
    kMethodNotAllowed,  // 405
  };
  Kind kind = kNotFound;
  std::string handle;  // kTensorNpy: percent-decoded, without ".npy"
  std::string error;   // kNotFound, kMethodNotAllowed: the message
  // Under /v1/tensors: the bearer token (when configured) is checked first,
  // even before a 404.
  bool needs_token = false;
};

// `target` is the request-target (path and optional query); `method` the
// request method ("GET", ...). Never fails: unknown paths are kNotFound.
Route MatchRoute(absl::string_view method, absl::string_view target);

// Decodes %XX escapes; a malformed escape is kept as it is.
std::string PercentDecode(absl::string_view s);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_ROUTES_H_
