// NpyFramer: the FetchResponse messages of one .npy file (a tensor or a view
// of it, see views::NpySource), framed by
// hand: a small copied slice (info in the first message, the data field's
// tag and length, header bytes) plus a slice over the payload itself.
#ifndef NPYSTREAM_SERVER_RPC_NPY_FRAMER_H_
#define NPYSTREAM_SERVER_RPC_NPY_FRAMER_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream::rpc {

inline constexpr uint32_t kDefaultChunkBytes = 1 << 20;
inline constexpr uint32_t kMinChunkBytes = 4 << 10;
// Leaves room for the info and framing under gRPC's 4 MiB message limit.
inline constexpr uint32_t kMaxChunkBytes = (4 << 20) - (64 << 10);

// The chunk size a FetchRequest asks for, clamped to [kMinChunkBytes,
// kMaxChunkBytes]; 0 means kDefaultChunkBytes.
uint32_t EffectiveChunkBytes(uint32_t requested);

// Not thread-safe; at most one Next outstanding.
class NpyFramer {
 public:
  NpyFramer(views::NpySource source, uint32_t chunk_bytes);

  // True once every message has been produced (there is always at least one).
  // Call only when no Next is outstanding.
  bool done() const;
  // What is sent: the tensor's info, or the view's.
  const TensorInfo& info() const { return source_.info; }
  // Builds the next message into `*out`, then calls `ready` with the .npy
  // bytes it carries (possibly on another thread, possibly before Next
  // returns). The payload slice pins the tensor until gRPC releases it.
  void Next(grpc::ByteBuffer* out, std::function<void(absl::Status, uint64_t)> ready);

 private:
  views::NpySource source_;
  const uint32_t chunk_bytes_;
  uint64_t sent_ = 0;
  bool first_ = true;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_NPY_FRAMER_H_
