#include "server/transfer/device_transfer.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/transfer/device_reader.h"
#include "server/transfer/device_writer.h"

namespace npystream {

absl::StatusOr<std::unique_ptr<DeviceTransfer>> DeviceTransfer::Create(const Options& options) {
  std::unique_ptr<DeviceTransfer> t(new DeviceTransfer(options));
  for (const auto& [name, device] : options.devices) {
    StagingRing::Options ro;
    ro.ring_bytes = options.ring_bytes;
    ro.slot_bytes = options.slot_bytes;
    ro.max_slots_per_owner = options.max_slots_per_fetch;
    ro.device = device;
    auto ring = StagingRing::Create(ro);
    if (!ring.ok()) {
      return absl::Status(ring.status().code(), absl::StrCat(name, ": ", ring.status().message()));
    }
    t->rings_[name] = std::move(*ring);
  }
  return t;
}

absl::StatusOr<std::unique_ptr<PayloadReader>> DeviceTransfer::OpenReader(
    std::shared_ptr<const StoredTensor> tensor) {
  if (tensor->info().nbytes == 0 ||
      (tensor->host_data() != nullptr && !options_.stage_host_tensors)) {
    return host_->OpenReader(std::move(tensor));
  }
  auto it = rings_.find(tensor->info().device);
  if (it == rings_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no staging ring for device ", tensor->info().device));
  }
  const void* src = tensor->data();
  const uint64_t nbytes = tensor->info().nbytes;
  return NewDeviceReader(it->second, options_.devices.at(it->first), src, nbytes, std::move(tensor),
                         options_.prefetch_slots, options_.metrics);
}

absl::StatusOr<std::unique_ptr<PayloadWriter>> DeviceTransfer::OpenWriter(
    const std::string& device, void* dst, uint64_t nbytes, std::shared_ptr<const void> keepalive) {
  if (nbytes == 0 || (device == "cpu" && !options_.stage_host_tensors)) {
    return host_->OpenWriter(device, dst, nbytes, std::move(keepalive));
  }
  auto it = rings_.find(device);
  if (it == rings_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("no staging ring for device ", device));
  }
  return NewDeviceWriter(it->second, options_.devices.at(it->first), dst, nbytes,
                         std::move(keepalive), options_.metrics);
}

size_t DeviceTransfer::free_staging_bytes() {
  size_t n = 0;
  for (auto& [name, ring] : rings_) n += ring->free_bytes();
  return n;
}

}  // namespace npystream
