// The one place absl::Status becomes grpc::Status.
#ifndef NPYSTREAM_SERVER_RPC_GRPC_STATUS_H_
#define NPYSTREAM_SERVER_RPC_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace npystream::rpc {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_GRPC_STATUS_H_
