// Model: one TorchScript model on one device, with activation capture.
#ifndef NPYSTREAM_SERVER_ENGINE_MODEL_H_
#define NPYSTREAM_SERVER_ENGINE_MODEL_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine_metrics.h"
#include "server/engine/model_config.h"
#include "server/store/device_plan.h"

namespace c10 {
struct IValue;
}  // namespace c10

namespace torch::jit {
struct Module;
struct GraphFunction;
}  // namespace torch::jit

namespace npystream {

class Batcher;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// How a caller waiting for a model (queued for a batch) gives up.
struct RunControl {
  std::function<bool()> cancelled;  // unset: never
  absl::Time deadline = absl::InfiniteFuture();
};

struct ModelRun {
  NamedTensors outputs;      // by output name (config, "output", "outputN" or Dict key)
  NamedTensors activations;  // by capture name ("layer" or "layer.key")
  double compute_ms = 0;
};

// Thread-safe: Run may be called concurrently; at most config().instances
// runs execute at once, the rest wait.
class Model {
 public:
  struct Options {
    std::string name;
    std::string dir;                   // holds model.pt and optionally config.json
    DevicePlan devices;                // resolves the config's device ("auto": the default)
    EngineMetrics* metrics = nullptr;  // not owned; batching metrics; may be null
  };

  // INVALID_ARGUMENT / NOT_FOUND naming the file and the defect when the
  // model or its config cannot be loaded. Never throws.
  static absl::StatusOr<std::shared_ptr<Model>> Load(const Options& options);
  ~Model();

  const std::string& name() const { return name_; }
  const std::string& device() const { return device_; }
  const ModelConfig& config() const { return config_; }
  // forward() argument names, without self.
  const std::vector<std::string>& input_names() const { return input_names_; }
  // Capturable submodules, in the order forward() calls them.
  const std::vector<std::string>& layers() const { return layers_; }
  // Output names known before a run (Dict keys appear after the first run).
  std::vector<std::string> output_names() const;

  // Runs forward on `inputs` (by argument name; one unnamed input is allowed
  // for a one-argument model), moving them to the model's device. `capture`
  // names layers, "layer.key" for Dict-returning layers, or output names.
  // INVALID_ARGUMENT naming the input or capture for bad requests or when the
  // model rejects its inputs; RESOURCE_EXHAUSTED when it runs out of memory.
  // With dynamic_batching configured, the run may share a forward pass with
  // concurrent ones (see Batcher); `control` lets a queued caller give up.
  absl::StatusOr<ModelRun> Run(const NamedTensors& inputs, const std::vector<std::string>& capture,
                               const RunControl& control = RunControl());

 private:
  Model() = default;
  // One forward pass of exactly these inputs.
  absl::StatusOr<ModelRun> RunOnce(const NamedTensors& inputs,
                                   const std::vector<std::string>& capture);
  absl::Status CheckInput(const std::string& name, const at::Tensor& t) const;
  // Run's steps: inputs by argument name; forward()'s argument stack on the
  // model's device; the instance limit; output names; requested activations;
  // a LibTorch exception as a status naming the inputs.
  absl::StatusOr<std::map<std::string, at::Tensor>> MatchInputs(const NamedTensors& inputs) const;
  absl::StatusOr<std::vector<c10::IValue>> ForwardArguments(
      const std::map<std::string, at::Tensor>& by_name) const;
  void AcquireInstance();
  void ReleaseInstance();
  absl::Status NameOutputs(const c10::IValue& output, ModelRun* run);
  absl::Status PickActivations(const std::vector<std::string>& capture,
                               const std::vector<std::string>& layers,
                               const std::vector<c10::IValue>& layer_values, ModelRun* run) const;
  absl::Status RunFailure(const std::exception& e, const NamedTensors& inputs) const;
  absl::StatusOr<std::shared_ptr<torch::jit::GraphFunction>> CaptureFunction(
      const std::vector<std::string>& layers);

  std::string name_;
  std::string device_;
  ModelConfig config_;
  std::unique_ptr<torch::jit::Module> module_;
  std::vector<std::string> input_names_;
  std::vector<std::string> layers_;
  std::unique_ptr<Batcher> batcher_;  // when config_.dynamic_batching is set

  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::shared_ptr<torch::jit::GraphFunction>> capture_fns_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> dict_keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_MODEL_H_
