// npystream.v1.InferRequest <-> the engine's InferCall / InferResult, apart
// from gRPC: inputs by handle are acquired from the store, inline .npy inputs
// become ephemeral host tensors; small results travel back as whole .npy.
#ifndef NPYSTREAM_SERVER_RPC_INFER_REQUEST_H_
#define NPYSTREAM_SERVER_RPC_INFER_REQUEST_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "npystream/v1/inference.pb.h"
#include "server/engine/inference_engine.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"

namespace npystream::rpc {

// Reads an input by a handle that another replica made; null when `handle`
// is this replica's (the store is asked then).
using RemoteInput =
    std::function<absl::StatusOr<std::shared_ptr<const StoredTensor>>(const std::string& handle)>;

// The call `request` asks for (without cancellation or deadline, which the
// caller adds). Adds the inline .npy bytes read to *received, also on failure. NOT_FOUND for an
// unknown handle and INVALID_ARGUMENT for a bad .npy or an input with
// neither, each naming the input; the store's and `remote`'s codes.
// Thread-safe.
absl::StatusOr<InferCall> DecodeInferRequest(const npystream::v1::InferRequest& request,
                                             TensorStore* store, const PutLimits& limits,
                                             uint64_t* received,
                                             const RemoteInput& remote = nullptr);

// Fills `response` from `result`: infos, and the whole .npy of each result
// without a handle (empty for the others). Adds the .npy bytes to *sent.
void EncodeInferResult(const InferResult& result, npystream::v1::InferResponse* response,
                       uint64_t* sent);

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_INFER_REQUEST_H_
