// DevicePlan: where tensors and models go. The one place a requested device
// ("", "auto", "cpu", "cuda", "gpu", "cuda:N") becomes a canonical name.
#ifndef NPYSTREAM_SERVER_STORE_DEVICE_PLAN_H_
#define NPYSTREAM_SERVER_STORE_DEVICE_PLAN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream {

// Immutable; copyable; thread-safe.
class DevicePlan {
 public:
  // A host-only plan: everything resolves to "cpu".
  DevicePlan() = default;

  // `default_device` is what "" and "auto" mean ("auto": "cuda:0" when a
  // CUDA device is usable, else "cpu"); `cuda_device_count` devices are
  // usable. INVALID_ARGUMENT naming the default when it is malformed or absent.
  static absl::StatusOr<DevicePlan> Create(absl::string_view default_device, int cuda_device_count);

  // The canonical name ("cpu" or "cuda:N") for a request. INVALID_ARGUMENT
  // naming the request when it is malformed or names a device this plan lacks.
  absl::StatusOr<std::string> Resolve(absl::string_view requested) const;

  const std::string& default_device() const { return default_device_; }
  int cuda_device_count() const { return cuda_device_count_; }
  bool uses_cuda() const { return cuda_device_count_ > 0; }

 private:
  std::string default_device_ = "cpu";
  int cuda_device_count_ = 0;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_DEVICE_PLAN_H_
