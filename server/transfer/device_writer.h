// The host-to-device half of the staging ring: a PayloadWriter into GPU
// memory (Puts).
#ifndef NPYSTREAM_SERVER_TRANSFER_DEVICE_WRITER_H_
#define NPYSTREAM_SERVER_TRANSFER_DEVICE_WRITER_H_

#include <cstdint>
#include <memory>

#include "server/transfer/copy_device.h"
#include "server/transfer/staging_ring.h"
#include "server/transfer/transfer.h"
#include "server/transfer/transfer_metrics.h"

namespace npystream {

// Writes `nbytes` of device memory at `device_dst` through `ring`: incoming
// bytes fill slot after slot, and each full slot is copied on stream k mod K
// while the next fills. `keepalive` (the destination) is held until every
// copy is done.
std::unique_ptr<PayloadWriter> NewDeviceWriter(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, void* device_dst,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               TransferMetrics* metrics);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_DEVICE_WRITER_H_
