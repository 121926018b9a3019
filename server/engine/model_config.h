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

//   {"device": "auto", "inputs": [{"name": "x", "dtype": "float32",
//    "shape": [-1, 1, 28, 28]}], "outputs": ["logits"], "layers": ["conv1"],
//    "max_batch": 64, "instances": 2}
// Every key is optional.
struct ModelConfig {
  std::string device = "auto";
  std::vector<InputSpec> inputs;
  std::vector<std::string> outputs;  // names of tuple/tensor outputs
  std::vector<std::string> layers;   // exposed layers; empty: every submodule
  uint32_t max_batch = 0;            // 0: unlimited (dimension 0 of inputs)
  uint32_t instances = 1;            // parallel executions
};

// INVALID_ARGUMENT naming the key for malformed JSON or values. dtypes are
// numpy names ("float32") or descrs ("<f4").
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_MODEL_CONFIG_H_
