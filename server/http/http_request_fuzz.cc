// libFuzzer target: the admin port's request parsing (route, percent
// decoding, query, thinning parameters, Range) never crashes, and what it
// accepts is consistent.
// Input: method '\n' target '\n' range-header '\n' then the body size.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_split.h"
#include "server/http/byte_range.h"
#include "server/http/routes.h"
#include "server/http/stream_thinner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts = absl::StrSplit(input, absl::MaxSplits('\n', 3));
  parts.resize(4);
  const npystream::Route route = npystream::MatchRoute(parts[0], parts[1]);
  if (route.kind == npystream::Route::kTensorNpy && !route.needs_token) std::abort();
  if ((route.kind == npystream::Route::kModelInfer ||
       route.kind == npystream::Route::kModelSubscribe ||
       route.kind == npystream::Route::kModelList) &&
      (!route.needs_token || (route.kind != npystream::Route::kModelList && route.model.empty()))) {
    std::abort();
  }
  if (auto policy = npystream::ParseThinPolicy(route.query); policy.ok()) {
    if (policy->every < 1 || !(policy->max_hz >= 0) || !std::isfinite(policy->max_hz)) std::abort();
  } else if (policy.status().message().empty()) {
    std::abort();
  }
  if ((route.kind == npystream::Route::kNotFound ||
       route.kind == npystream::Route::kMethodNotAllowed) &&
      route.error.empty()) {
    std::abort();
  }
  uint64_t total = 0;
  std::memcpy(&total, parts[3].data(), std::min<size_t>(parts[3].size(), sizeof(total)));
  total %= uint64_t{1} << 50;  // up to a petabyte
  uint64_t first = 0, last = 0;
  bool whole = false;
  if (npystream::ParseByteRange(parts[2], total, &first, &last, &whole) && !whole) {
    if (first > last || last >= total) std::abort();  // a 206 must lie inside the body
  }
  return 0;
}
