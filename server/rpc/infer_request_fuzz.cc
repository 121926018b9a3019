// libFuzzer target: an npystream.v1.InferRequest (protobuf bytes) decoded
// and run through the real engine (the demo model with its config's input
// checks, without a config, and behind the dynamic batcher). Never crashes;
// every inline result is a whole .npy of the size its info states; after the
// call (its stored outputs released) the store's budget is back where it was.
#include <cstdlib>
#include <string>

#include "npystream/v1/inference.pb.h"
#include "server/npy/npy_parser.h"
#include "server/rpc/infer_request.h"
#include "server/testing/engine_fuzz_env.h"

namespace {

void CheckResult(const npystream::v1::TensorInfo& info, const std::string& npy,
                 npystream::TensorStore* store, const npystream::PutLimits& limits) {
  if (!info.handle().empty()) {
    if (!npy.empty() || !store->Release(info.handle()).ok()) std::abort();
    return;
  }
  auto header_size = npystream::npy::PeekHeaderSize(npy, limits.parse);
  if (!header_size.ok() || *header_size == 0 || npy.size() != info.npy_bytes() ||
      npy.size() - *header_size != info.nbytes()) {
    std::abort();
  }
  auto meta = npystream::npy::ParseHeader(npy.substr(0, *header_size), limits.parse);
  if (!meta.ok() || npystream::npy::Descr(meta->dtype) != info.dtype()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  npystream::testing::EngineFuzzEnv& env = npystream::testing::GetEngineFuzzEnv();
  npystream::v1::InferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  {
    uint64_t received = 0;
    auto call = npystream::rpc::DecodeInferRequest(request, env.store.get(), env.limits, &received);
    if (call.ok()) {
      auto result = env.engine->Infer(*call);
      if (result.ok()) {
        npystream::v1::InferResponse response;
        uint64_t sent = 0;
        npystream::rpc::EncodeInferResult(*result, &response, &sent);
        if (response.outputs_size() != response.output_npy_size() ||
            response.activations_size() != response.activation_npy_size()) {
          std::abort();
        }
        for (int i = 0; i < response.outputs_size(); ++i) {
          CheckResult(response.outputs(i), response.output_npy(i), env.store.get(), env.limits);
        }
        for (int i = 0; i < response.activations_size(); ++i) {
          CheckResult(response.activations(i), response.activation_npy(i), env.store.get(),
                      env.limits);
        }
      }
    }
  }
  // Inputs, ephemeral results and released outputs all gave their bytes back.
  if (env.store->budget().used("cpu") != env.baseline_bytes) std::abort();
  return 0;
}
