// The Open Inference Protocol's REST infer body (JSON, with or without the
// binary-data extension) to and from the request/outcome the gRPC path uses.
#ifndef NPYSTREAM_SERVER_OIP_OIP_REST_H_
#define NPYSTREAM_SERVER_OIP_OIP_REST_H_

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/oip/oip_infer.h"

namespace npystream::oip {

// The header naming the JSON part's length when binary data follows it.
constexpr char kHeaderLengthField[] = "Inference-Header-Content-Length";

struct RestInferRequest {
  inference::ModelInferRequest request;  // inputs without contents
  // One per input, in order: views into the body (binary data) or into
  // `owned` (JSON data encoded as raw bytes). Valid while the body and this
  // object live.
  std::vector<absl::string_view> raw;
  std::deque<std::string> owned;
  bool binary_outputs = false;         // request parameter binary_data_output
  std::set<std::string> binary_named;  // outputs with parameter binary_data
};

// `json_length`: the Inference-Header-Content-Length value (nullopt: the
// whole body is JSON). INVALID_ARGUMENT naming what is malformed: the JSON,
// an input's shape, datatype, data count or binary_data_size, or a body
// whose binary part does not add up.
absl::StatusOr<RestInferRequest> ParseRestInfer(absl::string_view model, absl::string_view body,
                                                std::optional<uint64_t> json_length);

struct RestInferReply {
  std::string json;  // the JSON part
  // Appended after the JSON, in order (binary_data outputs); when not empty
  // the reply carries Inference-Header-Content-Length = json.size().
  std::vector<std::shared_ptr<const StoredTensor>> binary;
};

// INVALID_ARGUMENT for an FP16 output asked as JSON (it needs binary_data).
absl::StatusOr<RestInferReply> FormatRestInfer(const InferOutcome& outcome,
                                               const RestInferRequest& request);

}  // namespace npystream::oip

#endif  // NPYSTREAM_SERVER_OIP_OIP_REST_H_
