#include "server/http/routes.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace npystream {
namespace {

constexpr absl::string_view kTensorsPrefix = "/v1/tensors/";

}  // namespace

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() && absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Route MatchRoute(absl::string_view method, absl::string_view target) {
  Route route;
  if (auto q = target.find('?'); q != absl::string_view::npos) target = target.substr(0, q);
  if (method != "GET") {
    route.kind = Route::kMethodNotAllowed;
    route.error = "only GET is served";
    return route;
  }
  if (target == "/metrics") {
    route.kind = Route::kMetrics;
  } else if (target == "/healthz") {
    route.kind = Route::kHealthz;
  } else if (target == "/readyz") {
    route.kind = Route::kReadyz;
  } else if (target == "/v1/tensors") {
    route.kind = Route::kTensorList;
    route.needs_token = true;
  } else if (absl::StartsWith(target, kTensorsPrefix)) {
    route.needs_token = true;
    std::string handle = PercentDecode(target.substr(kTensorsPrefix.size()));
    if (absl::EndsWith(handle, ".npy")) {
      route.kind = Route::kTensorNpy;
      handle.resize(handle.size() - 4);
      route.handle = std::move(handle);
    } else {
      route.error = "use /v1/tensors/{handle}.npy";
    }
  } else {
    route.error = absl::StrCat("no route for ", target);
  }
  return route;
}

}  // namespace npystream
