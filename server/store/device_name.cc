#include "server/store/device_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace npystream {

absl::StatusOr<std::string> ResolveDevice(absl::string_view requested,
                                          int cuda_device_count) {
  const std::string d = absl::AsciiStrToLower(requested);
  if (d.empty() || d == "auto") {
    return cuda_device_count > 0 ? std::string("cuda:0") : std::string("cpu");
  }
  if (d == "cpu") return std::string("cpu");
  int index = 0;
  if (d == "cuda" || d == "gpu") {
    index = 0;
  } else if (absl::StartsWith(d, "cuda:")) {
    if (!absl::SimpleAtoi(d.substr(5), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device '", requested, "' is malformed (use auto, cpu or cuda:N)"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "device '", requested, "' is unknown (use auto, cpu or cuda:N)"));
  }
  if (index >= cuda_device_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device '", requested, "' is not available: this server has ",
        cuda_device_count, " CUDA device(s)"));
  }
  return absl::StrCat("cuda:", index);
}

}  // namespace npystream
