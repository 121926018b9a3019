#include "server/engine/model.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/script.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "server/common/status_macros.h"
#include "server/engine/batcher.h"
#include "server/store/device_plan.h"
#include "server/store/torch_dtype.h"

namespace npystream {
namespace {

std::string FirstLine(const std::exception& e) {
  std::string msg = e.what();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  return msg;
}

std::string Describe(const at::Tensor& t) {
  auto d = NpyDTypeOf(t.scalar_type());
  std::string shape = absl::StrJoin(t.sizes(), ", ");
  return absl::StrCat(d.ok() ? npy::Name(*d) : c10::toString(t.scalar_type()), "[", shape, "]");
}

// Appends the Tensors inside `value` as (prefix[.key], tensor).
absl::Status Flatten(const std::string& prefix, const c10::IValue& value,
                     const std::vector<std::string>& names, NamedTensors* out) {
  if (value.isTensor()) {
    out->emplace_back(prefix, value.toTensor());
  } else if (value.isTuple() || value.isList()) {
    std::vector<c10::IValue> items;
    if (value.isTuple()) {
      items = value.toTupleRef().elements().vec();
    } else {
      for (const c10::IValue& v : value.toListRef()) items.push_back(v);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].isTensor()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", prefix, "' item ", i, " is not a Tensor"));
      }
      std::string name = i < names.size() ? names[i] : absl::StrCat(prefix, i);
      out->emplace_back(std::move(name), items[i].toTensor());
    }
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString() || !entry.value().isTensor()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", prefix, "' is a Dict but not a Dict[str, Tensor]"));
      }
      const std::string key = entry.key().toStringRef();
      out->emplace_back(prefix.empty() ? key : absl::StrCat(prefix, ".", key),
                        entry.value().toTensor());
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", prefix, "' is a ", value.tagKind(), ", not Tensors"));
  }
  return absl::OkStatus();
}

}  // namespace

Model::~Model() = default;

absl::StatusOr<std::shared_ptr<Model>> Model::Load(const Options& options) {
  std::shared_ptr<Model> model(new Model());
  model->name_ = options.name;
  const std::string config_path = options.dir + "/config.json";
  auto text = ReadFileToString(config_path);
  if (!text.ok() && !absl::IsNotFound(text.status())) {
    return absl::InvalidArgumentError(text.status().message());
  }
  if (text.ok()) {
    auto config = ParseModelConfig(*text);
    if (!config.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", config.status().message()));
    }
    model->config_ = *config;
  }
  ASSIGN_OR_RETURN(model->device_, options.devices.Resolve(model->config_.device));
  const std::string path = options.dir + "/model.pt";
  if (!std::ifstream(path)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  try {
    model->module_ =
        std::make_unique<torch::jit::Module>(torch::jit::load(path, TorchDeviceOf(model->device_)));
    model->module_->eval();
    torch::jit::Method forward = model->module_->get_method("forward");
    const auto& args = forward.function().getSchema().arguments();
    for (size_t i = 1; i < args.size(); ++i) model->input_names_.push_back(args[i].name());
    // Capturable layers: top-level submodules whose forward() the model's
    // forward() calls directly, in call order.
    auto graph = torch::jit::toGraphFunction(forward.function()).graph();
    torch::jit::Value* self = graph->inputs()[0];
    std::set<std::string> seen;
    std::vector<std::string> found;
    for (torch::jit::Node* node : graph->nodes()) {
      if (node->kind() != c10::prim::CallMethod || node->s(c10::attr::name) != "forward") continue;
      torch::jit::Node* owner = node->inputs()[0]->node();
      if (owner->kind() != c10::prim::GetAttr || owner->input() != self) continue;
      const std::string layer = owner->s(c10::attr::name);
      if (seen.insert(layer).second) found.push_back(layer);
    }
    if (model->config_.layers.empty()) {
      model->layers_ = found;
    } else {
      for (const std::string& layer : model->config_.layers) {
        if (!seen.count(layer)) {
          return absl::InvalidArgumentError(absl::StrCat(
              config_path, ": layer '", layer, "' is not a submodule that forward() calls (",
              absl::StrJoin(found, ", "), ")"));
        }
      }
      model->layers_ = model->config_.layers;
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load ", path, ": ", FirstLine(e)));
  }
  for (const InputSpec& spec : model->config_.inputs) {
    if (std::find(model->input_names_.begin(), model->input_names_.end(), spec.name) ==
        model->input_names_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": input '", spec.name, "' is not an argument of forward(",
                       absl::StrJoin(model->input_names_, ", "), ")"));
    }
  }
  if (model->config_.dynamic_batching) {
    Batcher::Options bo;
    bo.config = *model->config_.dynamic_batching;
    bo.model = model->name_;
    bo.instances = static_cast<int>(model->config_.instances);
    bo.metrics = options.metrics;
    Model* m = model.get();  // the batcher lives and dies with the model
    model->batcher_ = std::make_unique<Batcher>(
        bo, [m](const NamedTensors& inputs, const std::vector<std::string>& capture) {
          return m->RunOnce(inputs, capture);
        });
  }
  return model;
}

std::vector<std::string> Model::output_names() const {
  absl::MutexLock lock(const_cast<absl::Mutex*>(&mu_));
  if (!dict_keys_.empty()) return dict_keys_;
  if (!config_.outputs.empty()) return config_.outputs;
  return {"output"};
}

absl::Status Model::CheckInput(const std::string& name, const at::Tensor& t) const {
  for (const InputSpec& spec : config_.inputs) {
    if (spec.name != name) continue;
    const std::string want = absl::StrCat(spec.dtype ? npy::Name(*spec.dtype) : "any", "[",
                                          absl::StrJoin(spec.shape, ", "), "]");
    if (spec.dtype && StorageTypeOf(*spec.dtype) != t.scalar_type()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': expected ", want, ", got ", Describe(t)));
    }
    if (!spec.shape.empty()) {
      bool ok = static_cast<int64_t>(spec.shape.size()) == t.dim();
      for (size_t i = 0; ok && i < spec.shape.size(); ++i) {
        ok = spec.shape[i] < 0 || spec.shape[i] == t.size(i);
      }
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", name, "': expected ", want, ", got ", Describe(t)));
      }
    }
  }
  if (config_.max_batch > 0 && t.dim() > 0 && t.size(0) > config_.max_batch) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "': batch of ", t.size(0),
                                                   " exceeds max_batch ", config_.max_batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<torch::jit::GraphFunction>> Model::CaptureFunction(
    const std::vector<std::string>& layers) {
  const std::string key = absl::StrJoin(layers, ",");
  {
    absl::MutexLock lock(&mu_);
    if (auto it = capture_fns_.find(key); it != capture_fns_.end()) return it->second;
  }
  // forward()'s graph, copied, returning (output, layer outputs...). The
  // module itself is untouched: the copy runs with the module as self.
  auto& forward = torch::jit::toGraphFunction(module_->get_method("forward").function());
  std::shared_ptr<torch::jit::Graph> graph = forward.graph()->copy();
  torch::jit::Value* self = graph->inputs()[0];
  std::map<std::string, torch::jit::Value*> last_call;
  for (torch::jit::Node* node : graph->nodes()) {
    if (node->kind() != c10::prim::CallMethod || node->s(c10::attr::name) != "forward") continue;
    torch::jit::Node* owner = node->inputs()[0]->node();
    if (owner->kind() == c10::prim::GetAttr && owner->input() == self) {
      last_call[owner->s(c10::attr::name)] = node->output();
    }
  }
  std::vector<torch::jit::Value*> values = {graph->return_node()->input(0)};
  for (const std::string& layer : layers) values.push_back(last_call.at(layer));
  torch::jit::Node* tuple = graph->insertNode(graph->createTuple(values));
  graph->return_node()->replaceInput(0, tuple->output());
  auto fn = std::make_shared<torch::jit::GraphFunction>(absl::StrCat(name_, ".forward_capture"),
                                                        graph, nullptr);
  absl::MutexLock lock(&mu_);
  capture_fns_[key] = fn;
  return fn;
}

absl::StatusOr<std::map<std::string, at::Tensor>> Model::MatchInputs(
    const NamedTensors& inputs) const {
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, tensor] : inputs) {
    std::string key = name;
    if (key.empty() && input_names_.size() == 1) key = input_names_[0];
    if (std::find(input_names_.begin(), input_names_.end(), key) == input_names_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name_, "' has no input '", name,
                       "' (inputs: ", absl::StrJoin(input_names_, ", "), ")"));
    }
    if (!by_name.emplace(key, tensor).second) {
      return absl::InvalidArgumentError(absl::StrCat("input '", key, "' given twice"));
    }
    RETURN_IF_ERROR(CheckInput(key, tensor));
  }
  return by_name;
}

absl::StatusOr<std::vector<c10::IValue>> Model::ForwardArguments(
    const std::map<std::string, at::Tensor>& by_name) const {
  const c10::Device device = TorchDeviceOf(device_);
  std::vector<c10::IValue> stack;
  const auto& schema = module_->get_method("forward").function().getSchema();
  for (size_t i = 0; i < input_names_.size(); ++i) {
    auto it = by_name.find(input_names_[i]);
    if (it != by_name.end()) {
      stack.emplace_back(it->second.to(device));
    } else if (schema.arguments()[i + 1].default_value()) {
      stack.push_back(*schema.arguments()[i + 1].default_value());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("missing input '", input_names_[i], "' for model '", name_, "'"));
    }
  }
  return stack;
}

void Model::AcquireInstance() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](Model* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
        return m->running_ < static_cast<int>(m->config_.instances);
      },
      this));
  ++running_;
}

void Model::ReleaseInstance() {
  absl::MutexLock lock(&mu_);
  --running_;
}

absl::Status Model::NameOutputs(const c10::IValue& output, ModelRun* run) {
  RETURN_IF_ERROR(Flatten("", output,
                          config_.outputs.empty() && output.isTensor()
                              ? std::vector<std::string>{"output"}
                              : config_.outputs,
                          &run->outputs));
  if (output.isTensor()) {
    run->outputs[0].first = config_.outputs.empty() ? "output" : config_.outputs[0];
  } else if (!output.isGenericDict()) {
    for (size_t i = config_.outputs.size(); i < run->outputs.size(); ++i) {
      run->outputs[i].first = absl::StrCat("output", i);
    }
  } else {
    absl::MutexLock lock(&mu_);
    if (dict_keys_.empty()) {
      for (const auto& [k, t] : run->outputs) dict_keys_.push_back(k);
    }
  }
  return absl::OkStatus();
}

absl::Status Model::PickActivations(const std::vector<std::string>& capture,
                                    const std::vector<std::string>& layers,
                                    const std::vector<c10::IValue>& layer_values,
                                    ModelRun* run) const {
  NamedTensors captured;
  for (size_t i = 0; i < layers.size(); ++i) {
    RETURN_IF_ERROR(Flatten(layers[i], layer_values[i], {}, &captured));
  }
  for (const std::string& c : capture) {
    const std::string base = c.substr(0, c.find('.'));
    const bool is_layer = std::find(layers.begin(), layers.end(), base) != layers.end();
    const NamedTensors* source = is_layer ? &captured : &run->outputs;
    bool matched = false;
    for (const auto& [name, t] : *source) {
      // "layer" matches the layer's tensor or every "layer.key" of a Dict.
      if (name == c || (is_layer && name.size() > c.size() && name.compare(0, c.size(), c) == 0 &&
                        name[c.size()] == '.')) {
        run->activations.emplace_back(name, t);
        matched = true;
      }
    }
    if (!matched) {
      std::vector<std::string> names = layers_;
      for (const auto& [name, t] : run->outputs) names.push_back(name);
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name_, "' has no layer or output '", c,
                       "' to capture (available: ", absl::StrJoin(names, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Model::RunFailure(const std::exception& e, const NamedTensors& inputs) const {
  const std::string msg = FirstLine(e);
  if (msg.find("out of memory") != std::string::npos) {
    return absl::ResourceExhaustedError(absl::StrCat("model '", name_, "': ", msg));
  }
  std::vector<std::string> described;
  for (const auto& [name, t] : inputs) described.push_back(absl::StrCat(name, "=", Describe(t)));
  return absl::InvalidArgumentError(absl::StrCat("model '", name_, "' rejected its inputs (",
                                                 absl::StrJoin(described, ", "), "): ", msg));
}

absl::StatusOr<ModelRun> Model::Run(const NamedTensors& inputs,
                                    const std::vector<std::string>& capture,
                                    const RunControl& control) {
  if (batcher_ != nullptr) return batcher_->Run(inputs, capture, control);
  return RunOnce(inputs, capture);
}

absl::StatusOr<ModelRun> Model::RunOnce(const NamedTensors& inputs,
                                        const std::vector<std::string>& capture) {
  ASSIGN_OR_RETURN(const auto by_name, MatchInputs(inputs));
  // Capture names that are layers run through the capture graph; the others
  // are picked from the outputs afterwards.
  std::vector<std::string> layers;
  for (const std::string& c : capture) {
    const std::string base = c.substr(0, c.find('.'));
    if (std::find(layers_.begin(), layers_.end(), base) != layers_.end() &&
        std::find(layers.begin(), layers.end(), base) == layers.end()) {
      layers.push_back(base);
    }
  }
  std::sort(layers.begin(), layers.end());

  ModelRun run;
  try {
    torch::NoGradGuard no_grad;
    ASSIGN_OR_RETURN(std::vector<c10::IValue> stack, ForwardArguments(by_name));
    std::shared_ptr<torch::jit::GraphFunction> capture_fn;
    if (!layers.empty()) {
      ASSIGN_OR_RETURN(capture_fn, CaptureFunction(layers));
    }
    // At most config().instances runs at once.
    AcquireInstance();
    struct Release {
      Model* m;
      ~Release() { m->ReleaseInstance(); }
    } release{this};

    const auto start = std::chrono::steady_clock::now();
    c10::IValue output;
    std::vector<c10::IValue> layer_values;
    if (capture_fn == nullptr) {
      output = module_->forward(stack);
    } else {
      stack.insert(stack.begin(), module_->_ivalue());
      capture_fn->run(stack);
      const auto& items = stack.back().toTupleRef().elements();
      output = items[0];
      layer_values.assign(items.begin() + 1, items.end());
    }
    run.compute_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    RETURN_IF_ERROR(NameOutputs(output, &run));
    RETURN_IF_ERROR(PickActivations(capture, layers, layer_values, &run));
  } catch (const std::exception& e) {
    return RunFailure(e, inputs);
  }
  return run;
}

}  // namespace npystream
