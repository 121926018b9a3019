// The store and engine the request fuzz targets run against: a model
// repository in a temporary folder holding the build's demo model three
// ways ("demo" with its config.json: the input checks; "bare" without one:
// LibTorch's own errors; "batched" with dynamic batching), and two stored
// tensors a request may name: "x1" (float32 [2, 1, 28, 28]) and "i1"
// (int64 [3]). Fuzz targets only.
#ifndef NPYSTREAM_SERVER_TESTING_ENGINE_FUZZ_ENV_H_
#define NPYSTREAM_SERVER_TESTING_ENGINE_FUZZ_ENV_H_

#include <cstdint>
#include <memory>

#include "server/engine/inference_engine.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"

namespace npystream::testing {

struct EngineFuzzEnv {
  std::unique_ptr<TensorStore> store;  // 64 MiB budget
  std::unique_ptr<InferenceEngine> engine;
  PutLimits limits;
  uint64_t baseline_bytes = 0;  // the two stored tensors' budget
};

// Made on first use, never freed (libFuzzer exits without unwinding).
// Aborts when the demo model is missing.
EngineFuzzEnv& GetEngineFuzzEnv();

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_ENGINE_FUZZ_ENV_H_
