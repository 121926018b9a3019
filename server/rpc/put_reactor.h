// PutReactor: gRPC's side of a streamed Put. PutAssembly turns the messages
// into the tensor (payload as views of the received slices, written by the
// transfer engine into a tensor preallocated on its device; a GPU Put goes
// through the staging ring); the reactor reads the next message only when the
// engine has taken the last one.
#ifndef NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_

#include <atomic>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "server/npy/npy_parser.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/put_assembly.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace npystream::rpc {

// Owns itself: deletes itself in OnDone.
class PutReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(TensorStore* store, Transfer* transfer, const PutLimits& limits,
             grpc::ByteBuffer* response, std::unique_ptr<CallTicket> ticket);
  void Start();

  void OnReadDone(bool ok) override;
  void OnDone() override;
  void OnCancel() override;

 private:
  // Consumes one PutRequest; an error ends the call.
  absl::Status Consume();
  // The client half-closed: waits for the payload's copies, then Complete.
  void EndOfStream();
  absl::Status Complete();
  void FinishWith(const absl::Status& status);

  PutAssembly assembly_;
  bool named_ = false;  // the ticket carries the tensor's name (set once, with the header)
  grpc::ByteBuffer* const response_;
  const std::unique_ptr<CallTicket> ticket_;
  grpc::ByteBuffer request_;
  int code_ = 0;
  std::string message_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
