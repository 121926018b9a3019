#include "server/rpc/infer_request.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {
namespace {

// A status naming the input it is about.
absl::Status ForInput(const std::string& name, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("input '", name, "': ", status.message()));
}

// A result without a handle as its whole .npy; empty for a stored one.
std::string InlineNpy(const std::shared_ptr<const StoredTensor>& t, uint64_t* sent) {
  if (!t->info().handle.empty() || t->host_data() == nullptr) return std::string();
  std::string npy = t->npy_header();
  npy.append(t->host_data(), t->info().nbytes);
  *sent += npy.size();
  return npy;
}

}  // namespace

absl::StatusOr<InferCall> DecodeInferRequest(const npystream::v1::InferRequest& request,
                                             TensorStore* store, const PutLimits& limits,
                                             uint64_t* received, const RemoteInput& remote) {
  InferCall call;
  call.model = request.model();
  call.outputs.assign(request.outputs().begin(), request.outputs().end());
  call.capture.assign(request.capture().begin(), request.capture().end());
  call.ttl_seconds = request.ttl_seconds();
  call.inline_max_bytes = request.inline_max_bytes();
  for (const auto& in : request.inputs()) {
    InferInputRef ref;
    ref.name = in.name();
    if (in.source_case() == npystream::v1::InferInput::kHandle) {
      if (remote) {
        auto t = remote(in.handle());
        if (!t.ok()) return ForInput(in.name(), t.status());
        ref.tensor = std::move(*t);
      }
      if (ref.tensor == nullptr) {
        auto t = store->Acquire(in.handle());
        if (!t.ok()) return ForInput(in.name(), t.status());
        ref.tensor = std::move(*t);
      }
    } else if (in.source_case() == npystream::v1::InferInput::kNpy) {
      auto t = StoreWholeNpy(store, in.npy(), limits);
      if (!t.ok()) return ForInput(in.name(), t.status());
      ref.tensor = std::move(*t);
      *received += in.npy().size();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name(), "' has neither a handle nor npy bytes"));
    }
    call.inputs.push_back(std::move(ref));
  }
  return call;
}

void EncodeInferResult(const InferResult& result, npystream::v1::InferResponse* response,
                       uint64_t* sent) {
  for (const auto& t : result.outputs) {
    ToProto(t->info(), response->add_outputs());
    response->add_output_npy(InlineNpy(t, sent));
  }
  for (const auto& t : result.activations) {
    ToProto(t->info(), response->add_activations());
    response->add_activation_npy(InlineNpy(t, sent));
  }
  response->set_compute_ms(result.compute_ms);
}

}  // namespace npystream::rpc
