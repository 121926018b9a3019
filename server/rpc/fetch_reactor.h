// FetchReactor: streams one stored tensor as a .npy file, each FetchResponse
// framed by hand around slices of the payload (no copy into protobuf).
#ifndef NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "server/rpc/rpc_metrics.h"
#include "server/transfer/transfer.h"

namespace npystream::rpc {

inline constexpr uint32_t kDefaultChunkBytes = 1 << 20;
inline constexpr uint32_t kMinChunkBytes = 4 << 10;
// Leaves room for the info and framing under gRPC's 4 MiB message limit.
inline constexpr uint32_t kMaxChunkBytes = (4 << 20) - (64 << 10);

// The chunk size a FetchRequest asks for, clamped to [kMinChunkBytes,
// kMaxChunkBytes]; 0 means kDefaultChunkBytes.
uint32_t EffectiveChunkBytes(uint32_t requested);

// Owns itself: deletes itself in OnDone. A write is started only after the
// previous one completed and the next chunk is ready, so at most one chunk
// beyond what gRPC holds is staged; a slow client slows only its own stream.
class FetchReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  FetchReactor(std::shared_ptr<const StoredTensor> tensor,
               std::unique_ptr<PayloadReader> reader, uint32_t chunk_bytes,
               RpcMetrics* metrics);
  // Begins sending; call once, right after construction.
  void Start();

  void OnWriteDone(bool ok) override;
  void OnDone() override;
  void OnCancel() override {}

 private:
  void SendNext();
  void OnChunk(absl::StatusOr<HostChunk> chunk, std::string prefix, uint64_t end);
  void FinishWith(const grpc::Status& status);

  const std::shared_ptr<const StoredTensor> tensor_;
  const std::unique_ptr<PayloadReader> reader_;
  const uint32_t chunk_bytes_;
  RpcMetrics* const metrics_;
  uint64_t sent_ = 0;  // .npy bytes handed to gRPC
  bool first_ = true;
  grpc::ByteBuffer buffer_;
  int code_ = 0;
  const absl::Time start_ = absl::Now();
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_
