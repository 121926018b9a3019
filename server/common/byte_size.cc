#include "server/common/byte_size.h"

#include <cctype>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace npystream {

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t i = 0;
  uint64_t value = 0;
  while (i < s.size() && absl::ascii_isdigit(s[i])) {
    uint64_t digit = s[i] - '0';
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return absl::InvalidArgumentError(absl::StrCat("byte size '", text, "' overflows 64 bits"));
    }
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size '", text, "' does not start with a number"));
  }
  std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(i)));
  uint64_t multiplier;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "kib" || unit == "k") {
    multiplier = uint64_t{1} << 10;
  } else if (unit == "mib" || unit == "m") {
    multiplier = uint64_t{1} << 20;
  } else if (unit == "gib" || unit == "g") {
    multiplier = uint64_t{1} << 30;
  } else if (unit == "tib" || unit == "t") {
    multiplier = uint64_t{1} << 40;
  } else if (unit == "kb") {
    multiplier = 1000;
  } else if (unit == "mb") {
    multiplier = 1000 * 1000;
  } else if (unit == "gb") {
    multiplier = 1000ull * 1000 * 1000;
  } else if (unit == "tb") {
    multiplier = 1000ull * 1000 * 1000 * 1000;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size '", text, "' has unknown unit '", unit,
                     "' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"));
  }
  if (value > std::numeric_limits<uint64_t>::max() / multiplier) {
    return absl::InvalidArgumentError(absl::StrCat("byte size '", text, "' overflows 64 bits"));
  }
  return value * multiplier;
}

std::string FormatByteSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

}  // namespace npystream
