// ModelConfig: the optional DIR/<name>/config.json of a model.
#ifndef NPYSTREAM_SERVER_ENGINE_MODEL_CONFIG_H_
#define NPYSTREAM_SERVER_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/npy/dtype.h"

namespace npystream {

struct InputSpec {
  std::string name;
  std::optional<npy::DType> dtype;  // unset: any
  std::vector<int64_t> shape;       // -1: any size; empty: any shape
};

// Concurrent requests merged into one forward pass along dimension 0.
struct DynamicBatching {
  uint32_t max_batch = 64;                      // rows in one pass; a larger request runs alone
  uint32_t max_queue_delay_us = 500;            // longest the first request waits for others
  std::vector<uint32_t> preferred_batch_sizes;  // cut a batch at one of these when it can
};

//   {"device": "auto", "inputs": [{"name": "x", "dtype": "float32",
//    "shape": [-1, 1, 28, 28]}], "outputs": ["logits"], "layers": ["conv1"],
//    "max_batch": 64, "instances": 2,
//    "dynamic_batching": {"max_batch": 64, "max_queue_delay_us": 500,
//                         "preferred_batch_sizes": [8, 16, 32, 64]}}
// Every key is optional.
struct ModelConfig {
  std::string device = "auto";
  std::vector<InputSpec> inputs;
  std::vector<std::string> outputs;                 // names of tuple/tensor outputs
  std::vector<std::string> layers;                  // exposed layers; empty: every submodule
  uint32_t max_batch = 0;                           // 0: unlimited (dimension 0 of inputs)
  uint32_t instances = 1;                           // parallel executions
  std::optional<DynamicBatching> dynamic_batching;  // absent: each request runs alone
};

// INVALID_ARGUMENT naming the key for malformed JSON or values. dtypes are
// numpy names ("float32") or descrs ("<f4").
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_MODEL_CONFIG_H_
