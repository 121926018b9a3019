// CopyDevice: the device operations the transfer engine needs, so the ring
// logic runs against a fake on machines without a GPU.
#ifndef NPYSTREAM_SERVER_TRANSFER_COPY_DEVICE_H_
#define NPYSTREAM_SERVER_TRANSFER_COPY_DEVICE_H_

#include <cstddef>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"

namespace npystream {

// Thread-safe.
class CopyDevice {
 public:
  virtual ~CopyDevice() = default;
  // Page-locked host memory (cudaHostAlloc); freed with FreePinned.
  virtual absl::StatusOr<void*> AllocPinned(size_t bytes) = 0;
  virtual void FreePinned(void* p) = 0;
  // Copy streams available; copies on one stream complete in order.
  virtual int num_streams() const = 0;
  // Enqueues a device-to-host copy on `stream` and calls `done` (on any
  // thread, never inside this call) once an event recorded after it fired.
  // Copies start after the work already queued on the device's default
  // stream (where LibTorch computes), so they see finished tensors.
  virtual void CopyToHostAsync(void* host_dst, const void* device_src, size_t bytes, int stream,
                               std::function<void(absl::Status)> done) = 0;
  // The same, host to device.
  virtual void CopyToDeviceAsync(void* device_dst, const void* host_src, size_t bytes, int stream,
                                 std::function<void(absl::Status)> done) = 0;
};

// The CUDA runtime on device `index` with `streams` copy streams.
// UNAVAILABLE when built without the toolkit or the device is absent.
absl::StatusOr<std::unique_ptr<CopyDevice>> NewCudaCopyDevice(int index, int streams);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_COPY_DEVICE_H_
