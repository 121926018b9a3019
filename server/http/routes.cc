#include "server/http/routes.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace npystream {
namespace {

constexpr absl::string_view kTensorsPrefix = "/v1/tensors/";
constexpr absl::string_view kModelsPrefix = "/v1/models/";
constexpr absl::string_view kStaticPrefix = "/static/";

std::map<std::string, std::string> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> out;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq), true);
    std::string value =
        eq == absl::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
    out[std::move(key)] = std::move(value);
  }
  return out;
}

// Sets `route` to 405 unless `method` is `want`.
bool MethodIs(absl::string_view method, absl::string_view want, absl::string_view path,
              Route* route) {
  if (method == want) return true;
  route->kind = Route::kMethodNotAllowed;
  route->allow = std::string(want);
  route->error = absl::StrCat(path, " takes ", want, ", not ", method);
  return false;
}

void MatchModelRoute(absl::string_view method, absl::string_view rest, Route* route) {
  const std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  if (parts.size() != 2 || parts[0].empty()) {
    route->error = "use /v1/models/{model}/infer or /v1/models/{model}/subscribe";
    return;
  }
  route->model = PercentDecode(parts[0]);
  if (parts[1] == "infer") {
    if (MethodIs(method, "POST", "infer", route)) route->kind = Route::kModelInfer;
  } else if (parts[1] == "subscribe") {
    if (MethodIs(method, "GET", "subscribe", route)) route->kind = Route::kModelSubscribe;
  } else {
    route->error = absl::StrCat("no route for model '", route->model, "': ", parts[1],
                                " (use infer or subscribe)");
  }
}

// /v2/... (the Open Inference Protocol's REST paths); `rest` follows "/v2".
void MatchV2Route(absl::string_view method, absl::string_view rest, Route* route) {
  const std::vector<absl::string_view> parts = absl::StrSplit(rest, '/', absl::SkipEmpty());
  route->needs_token = !(parts.size() == 2 && parts[0] == "health");
  if (parts.empty()) {
    if (MethodIs(method, "GET", "/v2", route)) route->kind = Route::kOipServer;
    return;
  }
  if (parts[0] == "health" && parts.size() == 2 && (parts[1] == "live" || parts[1] == "ready")) {
    if (MethodIs(method, "GET", "/v2/health", route)) {
      route->kind = parts[1] == "live" ? Route::kOipLive : Route::kOipReady;
    }
    return;
  }
  if (parts[0] != "models" || parts.size() < 2) {
    route->error = absl::StrCat("no route for /v2/", rest.substr(rest.empty() ? 0 : 1));
    return;
  }
  route->model = PercentDecode(parts[1]);
  size_t next = 2;
  if (parts.size() >= 4 && parts[2] == "versions") {
    route->version = PercentDecode(parts[3]);
    next = 4;
  }
  if (parts.size() == next) {
    if (MethodIs(method, "GET", "model metadata", route)) route->kind = Route::kOipModel;
  } else if (parts.size() == next + 1 && parts[next] == "ready") {
    if (MethodIs(method, "GET", "ready", route)) route->kind = Route::kOipModelReady;
  } else if (parts.size() == next + 1 && parts[next] == "infer") {
    if (MethodIs(method, "POST", "infer", route)) route->kind = Route::kOipInfer;
  } else {
    route->error = absl::StrCat("no route for model '", route->model,
                                "' (use /v2/models/{m}, .../ready or .../infer)");
  }
}

}  // namespace

std::string PercentDecode(absl::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() && absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
      out.push_back(static_cast<char>(v));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Route MatchRoute(absl::string_view method, absl::string_view target) {
  Route route;
  if (auto q = target.find('?'); q != absl::string_view::npos) {
    route.query = ParseQuery(target.substr(q + 1));
    target = target.substr(0, q);
  }
  route.needs_token = target == "/" || target == "/index.html" ||
                      absl::StartsWith(target, "/v1/") || absl::StartsWith(target, kStaticPrefix);
  if (target == "/v2" || absl::StartsWith(target, "/v2/")) {
    MatchV2Route(method, target.substr(3), &route);
    return route;
  }
  if (absl::StartsWith(target, kModelsPrefix)) {
    MatchModelRoute(method, target.substr(kModelsPrefix.size()), &route);
    return route;
  }
  if (!MethodIs(method, "GET", target, &route)) return route;
  if (target == "/metrics") {
    route.kind = Route::kMetrics;
  } else if (target == "/healthz") {
    route.kind = Route::kHealthz;
  } else if (target == "/readyz") {
    route.kind = Route::kReadyz;
  } else if (target == "/" || target == "/index.html") {
    route.kind = Route::kDashboard;
  } else if (absl::StartsWith(target, kStaticPrefix)) {
    route.kind = Route::kAsset;
    route.asset = std::string(target.substr(kStaticPrefix.size()));
  } else if (target == "/v1/tensors") {
    route.kind = Route::kTensorList;
  } else if (target == "/v1/models") {
    route.kind = Route::kModelList;
  } else if (absl::StartsWith(target, kTensorsPrefix)) {
    std::string handle = PercentDecode(target.substr(kTensorsPrefix.size()));
    if (absl::EndsWith(handle, ".npy")) {
      route.kind = Route::kTensorNpy;
      handle.resize(handle.size() - 4);
    } else {
      route.kind = Route::kTensorInfo;
    }
    if (handle.empty()) {
      route.kind = Route::kNotFound;
      route.error = "use /v1/tensors/{handle} or /v1/tensors/{handle}.npy";
    }
    route.handle = std::move(handle);
  } else {
    route.error = absl::StrCat("no route for ", target);
  }
  return route;
}

absl::StatusOr<views::ViewRequest> ViewFromQuery(const std::map<std::string, std::string>& query,
                                                 const std::string& prefix) {
  views::ViewRequest view;
  auto get = [&](const char* name) -> const std::string* {
    const auto it = query.find(prefix + name);
    return it == query.end() ? nullptr : &it->second;
  };
  if (const std::string* index = get("index")) view.index = *index;
  if (const std::string* dtype = get("dtype")) view.dtype = *dtype;
  if (const std::string* pool = get("pool"); pool != nullptr && !pool->empty()) {
    if (!absl::SimpleAtoi(*pool, &view.pool)) {
      return absl::InvalidArgumentError(
          absl::StrCat("view pool: '", absl::CHexEscape(*pool), "' is not a non-negative integer"));
    }
  }
  return view;
}

}  // namespace npystream
