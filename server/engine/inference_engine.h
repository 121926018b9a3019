// InferenceEngine: the model repository and the Infer pipeline: resolve
// inputs, run the model, store outputs and activations on its device, and
// feed subscribers.
#ifndef NPYSTREAM_SERVER_ENGINE_INFERENCE_ENGINE_H_
#define NPYSTREAM_SERVER_ENGINE_INFERENCE_ENGINE_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine_metrics.h"
#include "server/engine/model_config.h"
#include "server/engine/subscriptions.h"
#include "server/store/device_plan.h"
#include "server/store/tensor_store.h"

namespace npystream {

class Model;

struct ModelSummary {
  std::string name;
  std::string device;
  std::vector<InputSpec> inputs;  // config specs, else forward() argument names
  std::vector<std::string> outputs;
  std::vector<std::string> layers;
  uint32_t max_batch = 0;
  uint32_t instances = 1;
};

struct ModelListing {
  std::vector<ModelSummary> models;
  std::vector<std::pair<std::string, std::string>> errors;  // (name, why)
};

struct InferInputRef {
  std::string name;
  std::shared_ptr<const StoredTensor> tensor;
};

struct InferCall {
  std::string model;
  std::vector<InferInputRef> inputs;
  std::vector<std::string> outputs;  // empty: all
  std::vector<std::string> capture;
  uint32_t ttl_seconds = 0;
  uint64_t inline_max_bytes = 0;  // results this small are ephemeral host tensors
  std::set<std::string> keep;     // outputs kept under a handle whatever their size
  // While queued for a batch: give up when this says so (the client left)
  // or at the deadline. Unset: never.
  std::function<bool()> cancelled;
  absl::Time deadline = absl::InfiniteFuture();
};

// Results of at most InferCall::inline_max_bytes are ephemeral (no handle)
// and on the host, for the caller to send inline.
struct InferResult {
  std::vector<std::shared_ptr<const StoredTensor>> outputs;
  std::vector<std::shared_ptr<const StoredTensor>> activations;
  double compute_ms = 0;
};

// Cumulative counts for one model since the daemon started (or the model
// first ran), for the Open Inference Protocol's statistics.
struct ModelStats {
  uint64_t success_count = 0, success_ns = 0;  // Infer calls that returned results
  uint64_t fail_count = 0, fail_ns = 0;        // ...and calls that failed
  uint64_t inference_count = 0;                // rows (dimension 0 of the first input)
  uint64_t execution_count = 0;                // Infer calls run (a batch counts each call)
  int64_t last_inference_unix_ms = 0;
};

// Thread-safe.
class InferenceEngine {
 public:
  struct Options {
    std::string model_repository;      // empty: no models
    TensorStore* store = nullptr;      // not owned
    DevicePlan devices;                // where "auto" models go; a host-only plan by default
    EngineMetrics* metrics = nullptr;  // not owned; may be null
    // LibTorch's process-wide thread pools, set once by Create when > 0
    // (0: LibTorch's defaults: intra-op one per core).
    int intra_op_threads = 0;
    int inter_op_threads = 0;
  };

  // Loads every model; a bad one is logged, listed in errors and skipped.
  // INVALID_ARGUMENT when the repository is not a readable folder.
  static absl::StatusOr<std::unique_ptr<InferenceEngine>> Create(const Options& options);
  ~InferenceEngine();

  ModelListing ListModels();
  // One model's summary; NOT_FOUND as Infer words it (naming a load error).
  absl::StatusOr<ModelSummary> Describe(const std::string& model);
  // NOT_FOUND for a model that is not loaded.
  absl::StatusOr<ModelStats> Stats(const std::string& model);
  // Stops serving `model` until the next Reload. Calls in flight finish.
  // NOT_FOUND when it is not loaded.
  absl::Status Unload(const std::string& model);
  // Re-reads the repository. Calls in flight finish on the models they
  // started with; new calls see the new set.
  ModelListing Reload();

  // NOT_FOUND for an unknown model; INVALID_ARGUMENT naming the input,
  // output or capture for bad requests; RESOURCE_EXHAUSTED (budget/memory).
  absl::StatusOr<InferResult> Infer(const InferCall& call);

  // NOT_FOUND for an unknown model, INVALID_ARGUMENT for unknown layers.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(const std::string& model,
                                                          const std::vector<std::string>& layers);
  SubscriptionHub* hub() { return &hub_; }

 private:
  explicit InferenceEngine(const Options& options);
  absl::StatusOr<std::shared_ptr<Model>> Find(const std::string& name);
  static ModelSummary SummaryOf(const std::string& name, const Model& model);
  absl::StatusOr<InferResult> RunInfer(const InferCall& call);
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Store(const std::string& name,
                                                            const at::Tensor& t, uint32_t ttl,
                                                            bool ephemeral,
                                                            uint64_t inline_max = 0);

  const Options options_;
  SubscriptionHub hub_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Model>> models_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ModelStats> stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_INFERENCE_ENGINE_H_
