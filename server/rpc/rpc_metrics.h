// RpcMetrics: what the RPC layer reports about its traffic. Implemented by
// the daemon's Prometheus registry; tests pass a fake or nullptr.
#ifndef NPYSTREAM_SERVER_RPC_RPC_METRICS_H_
#define NPYSTREAM_SERVER_RPC_RPC_METRICS_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace npystream::rpc {

// Thread-safe; every method is cheap and never blocks.
class RpcMetrics {
 public:
  virtual ~RpcMetrics() = default;
  virtual void BytesSent(uint64_t n) = 0;
  virtual void BytesReceived(uint64_t n) = 0;
  virtual void FetchStarted() = 0;
  virtual void FetchEnded() = 0;
  // One finished call: method name ("Fetch"), canonical code, seconds taken.
  virtual void CallDone(absl::string_view method, int code, double seconds) = 0;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_RPC_METRICS_H_
