// An Infer input by handle that another replica made: read from its owner
// through a relayed Fetch (counted as method "InferInput") into an ephemeral
// host tensor of this replica, so the model runs here on the owner's bytes.
#ifndef NPYSTREAM_SERVER_RPC_REMOTE_INPUT_H_
#define NPYSTREAM_SERVER_RPC_REMOTE_INPUT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/peers/peers.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"

namespace npystream::rpc {

// Blocks until the whole tensor arrived (call it on a worker, never on a
// gRPC thread); the owner's stream is read one message at a time and
// cancelled when `caller` is. Adds the payload bytes read to *received. The
// relay's statuses (UNAVAILABLE naming `owner`, FAILED_PRECONDITION for a
// second hop, the owner's own), RESOURCE_EXHAUSTED past `limits`, DATA_LOSS
// when the owner's file is cut short. Thread-safe.
absl::StatusOr<std::shared_ptr<const StoredTensor>> ReadRemoteInput(
    peers::Peers* peers, const grpc::CallbackServerContext& caller, const std::string& owner,
    const std::string& handle, TensorStore* store, const PutLimits& limits, uint64_t* received);

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_REMOTE_INPUT_H_
