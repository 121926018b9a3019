// OipInfer: one Open Inference Protocol ModelInfer against the engine,
// shared by the unary call (raw inputs read straight from the request's
// slices), the stream and the REST edge. Inputs land in ephemeral host
// tensors with one copy; outputs come back as host tensors the edge frames
// without copying (or, with npystream_keep, as handles).
#ifndef NPYSTREAM_SERVER_OIP_OIP_INFER_H_
#define NPYSTREAM_SERVER_OIP_OIP_INFER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference/grpc_service.pb.h"
#include "server/engine/inference_engine.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"

namespace npystream::oip {

// The most bytes one raw output may carry (a protobuf bytes field).
constexpr uint64_t kMaxInlineOutputBytes = (uint64_t{1} << 31) - 1;

// Hands raw input `index`'s bytes to `sink`, piece by piece, in order.
using Sink = std::function<absl::Status(const char* data, size_t size)>;
using RawInputs = std::function<absl::Status(size_t index, const Sink& sink)>;

struct InferOutcome {
  // Everything but raw_output_contents.
  inference::ModelInferResponse response;
  // One per response output: its host tensor, or null for a kept output
  // (an empty raw_output_contents entry).
  std::vector<std::shared_ptr<const StoredTensor>> raw;
};

struct InferOptions {
  PutLimits limits;
  std::function<bool()> cancelled;  // a batched request leaves when this says so
  absl::Time deadline = absl::InfiniteFuture();
  uint64_t max_inline_output_bytes = kMaxInlineOutputBytes;
};

// The model a protocol call names (one version, "1"; empty means it):
// NOT_FOUND, in the engine's words, for an unknown model or another version.
absl::StatusOr<ModelSummary> FindServedModel(InferenceEngine* engine, const std::string& name,
                                             const std::string& version);

// `request` carries no raw_input_contents; `raw_count` says how many it had
// and `raw` reads them. NOT_FOUND for an unknown model or version;
// INVALID_ARGUMENT naming the input, output or parameter at fault;
// RESOURCE_EXHAUSTED for an output over the inline limit (pointing at
// npystream_keep) or the store's budget. Thread-safe; blocks while the model runs.
absl::StatusOr<InferOutcome> RunModelInfer(InferenceEngine* engine, TensorStore* store,
                                           const inference::ModelInferRequest& request,
                                           size_t raw_count, const RawInputs& raw,
                                           const InferOptions& options);

}  // namespace npystream::oip

#endif  // NPYSTREAM_SERVER_OIP_OIP_INFER_H_
