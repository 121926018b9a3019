// DeviceTransfer: fetches of GPU tensors stage through a pinned StagingRing.
// Slot k of the payload is copied on stream k mod K while earlier slots are
// being sent; each chunk handed to gRPC is a view of a slot, and the slot
// returns to the ring when gRPC releases it. Puts to a GPU go the other way
// through the same ring. Host tensors take the CPU path.
#ifndef NPYSTREAM_SERVER_TRANSFER_DEVICE_TRANSFER_H_
#define NPYSTREAM_SERVER_TRANSFER_DEVICE_TRANSFER_H_

#include <map>
#include <memory>
#include <string>

#include "server/transfer/copy_device.h"
#include "server/transfer/staging_ring.h"
#include "server/transfer/transfer.h"
#include "server/transfer/transfer_metrics.h"

namespace npystream {

class DeviceTransfer : public Transfer {
 public:
  struct Options {
    std::map<std::string, CopyDevice*> devices;  // "cuda:N" -> device; not owned
    size_t ring_bytes = size_t{256} << 20;       // per device
    size_t slot_bytes = size_t{4} << 20;
    int max_slots_per_fetch = 0;  // 0: a quarter of the ring, at least 4
    int prefetch_slots = 8;
    TransferMetrics* metrics = nullptr;
    // Stage host tensors (fetches and puts) through the ring of device "cpu"
    // too (tests and benchmarks of the ring path on machines without a GPU).
    bool stage_host_tensors = false;
  };

  static absl::StatusOr<std::unique_ptr<DeviceTransfer>> Create(const Options& options);

  absl::StatusOr<std::unique_ptr<PayloadReader>> OpenReader(
      std::shared_ptr<const StoredTensor> tensor) override;
  absl::StatusOr<std::unique_ptr<PayloadWriter>> OpenWriter(
      const std::string& device, void* dst, uint64_t nbytes,
      std::shared_ptr<const void> keepalive) override;
  // Free staging bytes over all devices.
  size_t free_staging_bytes();

 private:
  explicit DeviceTransfer(const Options& options) : options_(options) {}
  const Options options_;
  std::unique_ptr<Transfer> host_ = NewCpuTransfer();
  std::map<std::string, std::shared_ptr<StagingRing>> rings_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_DEVICE_TRANSFER_H_
