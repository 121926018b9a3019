// Finishing unary callback calls and refusing streaming ones, with the
// outcome recorded on the call's ticket.
#ifndef NPYSTREAM_SERVER_RPC_UNARY_DONE_H_
#define NPYSTREAM_SERVER_RPC_UNARY_DONE_H_

#include <memory>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/grpc_status.h"

namespace npystream::rpc {

// Finishes a unary call with `status` (the ticket may be null when the call
// was not admitted).
inline grpc::ServerUnaryReactor* FinishUnary(grpc::ServerUnaryReactor* reactor,
                                             std::unique_ptr<CallTicket> ticket,
                                             const absl::Status& status) {
  if (ticket != nullptr) ticket->Done(static_cast<int>(status.code()), status.message());
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A server-streaming call answered with an error and no messages.
class ErrorWriteReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ErrorWriteReactor(const absl::Status& status, std::unique_ptr<CallTicket> ticket) {
    if (ticket != nullptr) ticket->Done(static_cast<int>(status.code()), status.message());
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// A client-streaming call refused before reading anything.
class ErrorReadReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit ErrorReadReactor(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_UNARY_DONE_H_
