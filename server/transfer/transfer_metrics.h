// TransferMetrics: what the transfer engine reports.
#ifndef NPYSTREAM_SERVER_TRANSFER_TRANSFER_METRICS_H_
#define NPYSTREAM_SERVER_TRANSFER_TRANSFER_METRICS_H_

#include <cstdint>

namespace npystream {

// What the transfer engine reports. Thread-safe; may be null.
class TransferMetrics {
 public:
  virtual ~TransferMetrics() = default;
  virtual void D2HBytes(uint64_t n) = 0;
  virtual void H2DBytes(uint64_t n) = 0;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_TRANSFER_METRICS_H_
