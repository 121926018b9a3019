// The device-to-host half of the staging ring: a PayloadReader over GPU
// memory (fetches).
#ifndef NPYSTREAM_SERVER_TRANSFER_DEVICE_READER_H_
#define NPYSTREAM_SERVER_TRANSFER_DEVICE_READER_H_

#include <cstdint>
#include <memory>

#include "server/transfer/copy_device.h"
#include "server/transfer/staging_ring.h"
#include "server/transfer/transfer.h"
#include "server/transfer/transfer_metrics.h"

namespace npystream {

// Reads `nbytes` of device memory at `device_src` through `ring`, prefetching
// up to `prefetch_slots` slots. `keepalive` (e.g. the tensor's pin) is held
// until the reader and its in-flight copies are done.
std::unique_ptr<PayloadReader> NewDeviceReader(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, const void* device_src,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               int prefetch_slots, TransferMetrics* metrics);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_DEVICE_READER_H_
