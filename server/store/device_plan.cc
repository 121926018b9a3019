#include "server/store/device_plan.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace npystream {
namespace {

bool IsAutomatic(absl::string_view d) { return d.empty() || d == "auto"; }

// An explicit request (not ""/"auto") against `cuda_device_count` devices.
absl::StatusOr<std::string> ResolveExplicit(absl::string_view requested, int cuda_device_count) {
  const std::string d = absl::AsciiStrToLower(requested);
  if (d == "cpu") return std::string("cpu");
  int index = 0;
  if (d == "cuda" || d == "gpu") {
    index = 0;
  } else if (absl::StartsWith(d, "cuda:")) {
    if (!absl::SimpleAtoi(d.substr(5), &index) || index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", requested, "' is malformed (use auto, cpu or cuda:N)"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", requested, "' is unknown (use auto, cpu or cuda:N)"));
  }
  if (index >= cuda_device_count) {
    return absl::InvalidArgumentError(absl::StrCat("device '", requested,
                                                   "' is not available: this server has ",
                                                   cuda_device_count, " CUDA device(s)"));
  }
  return absl::StrCat("cuda:", index);
}

}  // namespace

absl::StatusOr<DevicePlan> DevicePlan::Create(absl::string_view default_device,
                                              int cuda_device_count) {
  DevicePlan plan;
  plan.cuda_device_count_ = std::max(0, cuda_device_count);
  if (IsAutomatic(absl::AsciiStrToLower(default_device))) {
    plan.default_device_ = plan.cuda_device_count_ > 0 ? "cuda:0" : "cpu";
  } else {
    auto resolved = ResolveExplicit(default_device, plan.cuda_device_count_);
    if (!resolved.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--device ", default_device, ": ", resolved.status().message()));
    }
    plan.default_device_ = *std::move(resolved);
  }
  return plan;
}

absl::StatusOr<std::string> DevicePlan::Resolve(absl::string_view requested) const {
  if (IsAutomatic(absl::AsciiStrToLower(requested))) return default_device_;
  return ResolveExplicit(requested, cuda_device_count_);
}

}  // namespace npystream
