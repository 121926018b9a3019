#include "server/engine/inference_engine.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/engine/blas_info.h"
#include "server/engine/model.h"
#include "server/store/torch_dtype.h"

namespace npystream {
namespace {

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

InferenceEngine::InferenceEngine(const Options& options)
    : options_(options),
      hub_([m = options.metrics](const std::string& model, const std::string& layer) {
        if (m != nullptr) m->SubscribeDropped(model, layer);
      }) {}

InferenceEngine::~InferenceEngine() = default;

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Create(const Options& options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("InferenceEngine needs a store");
  if (!options.model_repository.empty() && !IsDir(options.model_repository)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model-repository ", options.model_repository, " is not a folder"));
  }
  try {
    if (options.intra_op_threads > 0) at::set_num_threads(options.intra_op_threads);
    // Allowed once per process, before any inter-op work (so, before loading).
    if (options.inter_op_threads > 0 && at::get_num_interop_threads() != options.inter_op_threads) {
      at::set_num_interop_threads(options.inter_op_threads);
    }
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("--torch-interop-threads: ", e.what_without_backtrace()));
  }
  Log(LogLevel::kInfo, "torch_threads",
      {{"intra_op", at::get_num_threads()}, {"inter_op", at::get_num_interop_threads()}});
  // BLAS threads follow LibTorch's intra-op threads (--torch-threads).
  const BlasInfo blas = LimitBlasThreads(at::get_num_threads());
  Log(blas.reference ? LogLevel::kWarning : LogLevel::kInfo, "blas",
      {{"library", blas.library},
       {"openblas", blas.openblas},
       {"threading", blas.threading},
       {"threads", blas.threads},
       {"hint", blas.reference ? "the reference BLAS makes Linear layers several times slower: "
                                 "install libopenblas0-serial"
                               : ""}});
  std::unique_ptr<InferenceEngine> engine(new InferenceEngine(options));
  engine->Reload();
  return engine;
}

ModelListing InferenceEngine::Reload() {
  std::map<std::string, std::shared_ptr<Model>> models;
  std::vector<std::pair<std::string, std::string>> errors;
  const std::string& repo = options_.model_repository;
  if (!repo.empty()) {
    std::vector<std::string> names;
    if (DIR* dir = opendir(repo.c_str())) {
      while (dirent* e = readdir(dir)) {
        const std::string name = e->d_name;
        if (name.empty() || name[0] == '.' || !IsDir(repo + "/" + name)) continue;
        names.push_back(name);
      }
      closedir(dir);
    } else {
      errors.emplace_back("", absl::StrCat("cannot read ", repo));
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      Model::Options mo;
      mo.name = name;
      mo.dir = repo + "/" + name;
      mo.devices = options_.devices;
      mo.metrics = options_.metrics;
      const auto start = std::chrono::steady_clock::now();
      auto model = Model::Load(mo);
      if (!model.ok()) {
        Log(LogLevel::kWarning, "model_load_failed",
            {{"model", name}, {"error", model.status().message()}});
        errors.emplace_back(name, std::string(model.status().message()));
        continue;
      }
      Log(LogLevel::kInfo, "model_loaded",
          {{"model", name},
           {"device", (*model)->device()},
           {"layers", absl::StrJoin((*model)->layers(), ",")},
           {"ms",
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count()}});
      models[name] = std::move(*model);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    models_.swap(models);
    errors_ = errors;
  }
  // `models` now holds the old set; each is freed when its last call ends.
  return ListModels();
}

ModelSummary InferenceEngine::SummaryOf(const std::string& name, const Model& m) {
  ModelSummary s;
  s.name = name;
  s.device = m.device();
  s.inputs = m.config().inputs;
  if (s.inputs.empty()) {
    for (const std::string& in : m.input_names()) s.inputs.push_back(InputSpec{in, {}, {}});
  }
  s.outputs = m.output_names();
  s.layers = m.layers();
  s.max_batch = m.config().max_batch;
  s.instances = m.config().instances;
  return s;
}

ModelListing InferenceEngine::ListModels() {
  ModelListing listing;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, m] : models_) listing.models.push_back(SummaryOf(name, *m));
  listing.errors = errors_;
  return listing;
}

absl::StatusOr<ModelSummary> InferenceEngine::Describe(const std::string& model) {
  ASSIGN_OR_RETURN(std::shared_ptr<Model> m, Find(model));
  return SummaryOf(model, *m);
}

absl::StatusOr<std::shared_ptr<Model>> InferenceEngine::Find(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    for (const auto& [n, why] : errors_) {
      if (n == name) {
        return absl::NotFoundError(absl::StrCat("model '", name, "' failed to load: ", why));
      }
    }
    return absl::NotFoundError(absl::StrCat("no model named '", name, "'"));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> InferenceEngine::Store(const std::string& name,
                                                                           const at::Tensor& tensor,
                                                                           uint32_t ttl,
                                                                           bool ephemeral,
                                                                           uint64_t inline_max) {
  at::Tensor t = tensor;
  try {
    // NumPy has no bfloat16: convert on the tensor's own device.
    if (t.scalar_type() == c10::ScalarType::BFloat16) t = t.to(c10::ScalarType::Float);
    // Small results the caller wants inline: ephemeral, on the host.
    if (!ephemeral && inline_max > 0 &&
        static_cast<uint64_t>(t.numel()) * t.element_size() <= inline_max) {
      ephemeral = true;
      if (!t.device().is_cpu()) t = t.cpu();
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("converting '", name, "' to float32: ", e.what()));
  }
  auto dtype = NpyDTypeOf(t.scalar_type());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "': ", dtype.status().message()));
  }
  TensorStore::InsertOptions options;
  options.label = name;
  options.ttl_seconds = ttl;
  options.ephemeral = ephemeral;
  return options_.store->Insert(t, *dtype, options);
}

absl::StatusOr<InferResult> InferenceEngine::Infer(const InferCall& call) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<InferResult> result = RunInfer(call);
  const uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  uint64_t rows = 1;
  if (!call.inputs.empty() && !call.inputs[0].tensor->info().meta.shape.empty()) {
    rows = static_cast<uint64_t>(call.inputs[0].tensor->info().meta.shape[0]);
  }
  absl::MutexLock lock(&mu_);
  if (models_.count(call.model) == 0) return result;  // unknown: nothing to count
  ModelStats& stats = stats_[call.model];
  ++stats.execution_count;
  if (result.ok()) {
    ++stats.success_count;
    stats.success_ns += ns;
    stats.inference_count += rows;
  } else {
    ++stats.fail_count;
    stats.fail_ns += ns;
  }
  stats.last_inference_unix_ms = absl::ToUnixMillis(absl::Now());
  return result;
}

absl::StatusOr<ModelStats> InferenceEngine::Stats(const std::string& model) {
  absl::MutexLock lock(&mu_);
  if (models_.count(model) == 0)
    return absl::NotFoundError(absl::StrCat("no model named '", model, "'"));
  return stats_[model];
}

absl::Status InferenceEngine::Unload(const std::string& model) {
  std::shared_ptr<Model> unloaded;  // freed outside the lock
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("no model named '", model, "'"));
  unloaded = std::move(it->second);
  models_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<InferResult> InferenceEngine::RunInfer(const InferCall& call) {
  const auto start = std::chrono::steady_clock::now();
  // Under OpenMP the intra-op thread count is a per-thread setting: apply it
  // once in every thread that runs a model, or each such thread gets its own
  // team of one thread per core (found by the soak: 64 extra threads).
  if (options_.intra_op_threads > 0) {
    thread_local int applied = 0;
    if (applied != options_.intra_op_threads) {
      at::set_num_threads(options_.intra_op_threads);
      applied = options_.intra_op_threads;
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Model> model, Find(call.model));
  NamedTensors inputs;
  for (const InferInputRef& in : call.inputs) {
    const npy::DType d = in.tensor->info().meta.dtype;
    if (d == npy::DType::kUInt16 || d == npy::DType::kUInt32 || d == npy::DType::kUInt64) {
      return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "': ", npy::Name(d),
                                                     " has no LibTorch dtype; cast it first"));
    }
    inputs.emplace_back(in.name, in.tensor->tensor());
  }
  // Capture what the caller asked for plus what subscribers want.
  std::vector<std::string> capture = call.capture;
  const std::set<std::string> wanted = hub_.LayersWanted(call.model);
  for (const std::string& layer : wanted) {
    if (std::find(capture.begin(), capture.end(), layer) == capture.end()) capture.push_back(layer);
  }
  RunControl control;
  control.cancelled = call.cancelled;
  control.deadline = call.deadline;
  ASSIGN_OR_RETURN(ModelRun run, model->Run(inputs, capture, control));

  InferResult result;
  result.compute_ms = run.compute_ms;
  for (const std::string& want : call.outputs) {
    if (std::none_of(run.outputs.begin(), run.outputs.end(),
                     [&](const auto& o) { return o.first == want; })) {
      std::vector<std::string> names;
      for (const auto& o : run.outputs) names.push_back(o.first);
      return absl::InvalidArgumentError(
          absl::StrCat("model '", call.model, "' has no output '", want,
                       "' (outputs: ", absl::StrJoin(names, ", "), ")"));
    }
  }
  for (const auto& [name, t] : run.outputs) {
    if (!call.outputs.empty() &&
        std::find(call.outputs.begin(), call.outputs.end(), name) == call.outputs.end()) {
      continue;
    }
    ASSIGN_OR_RETURN(auto stored, Store(name, t, call.ttl_seconds, false,
                                        call.keep.count(name) ? 0 : call.inline_max_bytes));
    result.outputs.push_back(std::move(stored));
  }
  for (const auto& [name, t] : run.activations) {
    const std::string base = name.substr(0, name.find('.'));
    const bool requested =
        std::find(call.capture.begin(), call.capture.end(), name) != call.capture.end() ||
        std::find(call.capture.begin(), call.capture.end(), base) != call.capture.end();
    std::shared_ptr<const StoredTensor> stored;
    if (requested) {
      ASSIGN_OR_RETURN(stored, Store(name, t, call.ttl_seconds, false,
                                     call.keep.count(name) ? 0 : call.inline_max_bytes));
      result.activations.push_back(stored);
    }
    if (wanted.count(name) || wanted.count(base)) {
      if (stored == nullptr) {
        auto ephemeral = Store(name, t, 0, true);
        if (!ephemeral.ok()) {
          // No room: the subscriber misses this value (counted as a drop).
          if (options_.metrics) options_.metrics->SubscribeDropped(call.model, name);
          continue;
        }
        stored = std::move(*ephemeral);
      }
      hub_.Publish(call.model, wanted.count(name) ? name : base, stored, run.compute_ms);
    }
  }
  if (options_.metrics != nullptr) {
    options_.metrics->InferDone(
        call.model,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return result;
}

absl::StatusOr<std::shared_ptr<Subscription>> InferenceEngine::Subscribe(
    const std::string& model_name, const std::vector<std::string>& layers) {
  ASSIGN_OR_RETURN(std::shared_ptr<Model> model, Find(model_name));
  if (layers.empty()) return absl::InvalidArgumentError("Subscribe needs at least one layer");
  std::vector<std::string> known = model->layers();
  for (const std::string& o : model->output_names()) known.push_back(o);
  for (const std::string& layer : layers) {
    if (std::find(known.begin(), known.end(), layer.substr(0, layer.find('.'))) == known.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", model_name, "' has no layer '", layer,
                       "' (layers: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  if (options_.metrics != nullptr) {
    for (const std::string& layer : layers) options_.metrics->SubscribeOpened(model_name, layer);
  }
  return hub_.Subscribe(model_name, std::set<std::string>(layers.begin(), layers.end()));
}

}  // namespace npystream
