#include "server/http/byte_range.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace npystream {

bool ParseByteRange(const std::string& header, uint64_t total, uint64_t* first, uint64_t* last,
                    bool* whole) {
  *whole = false;
  if (header.empty()) {
    *whole = true;
    return true;
  }
  if (!absl::StartsWith(header, "bytes=")) return false;
  const std::string spec = header.substr(6);
  if (spec.find(',') != std::string::npos) {
    *whole = true;  // multiple ranges: RFC 9110 lets us send everything
    return true;
  }
  const size_t dash = spec.find('-');
  if (dash == std::string::npos) return false;
  const std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  uint64_t x = 0, y = 0;
  if (a.empty()) {  // suffix: the last y bytes
    if (!absl::SimpleAtoi(b, &y) || y == 0 || total == 0) return false;
    *first = y >= total ? 0 : total - y;
    *last = total - 1;
    return true;
  }
  if (!absl::SimpleAtoi(a, &x) || x >= total) return false;
  if (b.empty()) {
    y = total - 1;
  } else if (!absl::SimpleAtoi(b, &y) || y < x) {
    return false;
  }
  *first = x;
  *last = std::min(y, total - 1);
  return true;
}

}  // namespace npystream
