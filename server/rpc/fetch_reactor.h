// FetchReactor: streams one stored tensor, or a view of it, as a .npy file
// (see NpyFramer).
#ifndef NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_

#include <atomic>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/npy_framer.h"

namespace npystream::rpc {

// Owns itself: deletes itself in OnDone. A write starts only after the
// previous one completed and the next chunk is ready, so a slow client
// slows only its own stream and holds at most one staged chunk.
class FetchReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  FetchReactor(views::NpySource source, uint32_t chunk_bytes, std::unique_ptr<CallTicket> ticket,
               RpcMetrics* metrics);
  // Begins sending; call once, right after construction.
  void Start();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void SendNext();
  void FinishWith(const grpc::Status& status);

  NpyFramer framer_;
  const std::unique_ptr<CallTicket> ticket_;
  RpcMetrics* const metrics_;
  grpc::ByteBuffer buffer_;
  int code_ = 0;
  std::string message_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_FETCH_REACTOR_H_
