#include "server/oip/oip_infer.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"
#include "server/oip/oip_types.h"

namespace npystream::oip {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using ParamMap = google::protobuf::Map<std::string, InferParameter>;

constexpr char kCapture[] = "npystream_capture";
constexpr char kTtl[] = "npystream_ttl";
constexpr char kKeep[] = "npystream_keep";
constexpr char kHandle[] = "npystream_handle";

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Copies typed contents of `in` into `writer` as `type` elements.
template <typename T, typename Field>
absl::Status AppendTyped(const Field& values, uint64_t count, TensorWriter* writer) {
  if (static_cast<uint64_t>(values.size()) != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("contents hold ", values.size(), " values; the shape needs ", count));
  }
  std::vector<T> buffer(values.begin(), values.end());
  return writer->Append(reinterpret_cast<const char*>(buffer.data()), buffer.size() * sizeof(T));
}

absl::Status AppendContents(const ModelInferRequest::InferInputTensor& in, const WireType& type,
                            uint64_t count, TensorWriter* writer) {
  const inference::InferTensorContents& c = in.contents();
  switch (type.widen) {
    case WireType::Widen::kUInt16:
      return AppendTyped<int32_t>(c.uint_contents(), count, writer);
    case WireType::Widen::kUInt32:
      return AppendTyped<int64_t>(c.uint_contents(), count, writer);
    case WireType::Widen::kUInt64:
      for (uint64_t v : c.uint64_contents()) {
        if (v > static_cast<uint64_t>(INT64_MAX)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "UINT64 value ", v, " exceeds INT64_MAX (LibTorch has no uint64 tensors)"));
        }
      }
      return AppendTyped<int64_t>(c.uint64_contents(), count, writer);
    default:
      break;
  }
  switch (type.dtype) {
    case npy::DType::kBool:
      return AppendTyped<uint8_t>(c.bool_contents(), count, writer);
    case npy::DType::kInt8:
      return AppendTyped<int8_t>(c.int_contents(), count, writer);
    case npy::DType::kInt16:
      return AppendTyped<int16_t>(c.int_contents(), count, writer);
    case npy::DType::kInt32:
      return AppendTyped<int32_t>(c.int_contents(), count, writer);
    case npy::DType::kInt64:
      return AppendTyped<int64_t>(c.int64_contents(), count, writer);
    case npy::DType::kUInt8:
      return AppendTyped<uint8_t>(c.uint_contents(), count, writer);
    case npy::DType::kUInt16:
      return AppendTyped<uint16_t>(c.uint_contents(), count, writer);
    case npy::DType::kUInt32:
      return AppendTyped<uint32_t>(c.uint_contents(), count, writer);
    case npy::DType::kUInt64:
      return AppendTyped<uint64_t>(c.uint64_contents(), count, writer);
    case npy::DType::kFloat32:
      return AppendTyped<float>(c.fp32_contents(), count, writer);
    case npy::DType::kFloat64:
      return AppendTyped<double>(c.fp64_contents(), count, writer);
    default:
      return absl::InvalidArgumentError(
          "FP16 and BF16 travel only as raw_input_contents (the protocol has no typed field)");
  }
}

// Reads raw input `index` into `writer`, widening (BF16, UINT16..64) on the way.
absl::Status AppendRaw(const RawInputs& raw, size_t index, const WireType& type, uint64_t count,
                       TensorWriter* writer) {
  const uint64_t want = count * type.wire_bytes;
  const size_t stored_bytes = static_cast<size_t>(npy::ItemSize(type.dtype));
  uint64_t got = 0;
  std::string carry;  // an element split across two pieces
  std::vector<char> widened;
  absl::Status status = raw(index, [&](const char* data, size_t size) -> absl::Status {
    got += size;
    if (got > want) return absl::OkStatus();  // reported below, with the total
    if (type.widen == WireType::Widen::kNone) return writer->Append(data, size);
    std::string joined;
    if (!carry.empty()) {
      joined = carry + std::string(data, size);
      data = joined.data();
      size = joined.size();
    }
    const size_t n = size / type.wire_bytes;
    widened.resize(n * stored_bytes);
    RETURN_IF_ERROR(WidenElements(type, data, n, widened.data()));
    carry.assign(data + n * type.wire_bytes, size - n * type.wire_bytes);
    return writer->Append(widened.data(), widened.size());
  });
  RETURN_IF_ERROR(status);
  if (got != want) {
    return absl::InvalidArgumentError(absl::StrCat("raw_input_contents[", index, "] holds ", got,
                                                   " bytes; the shape needs ", want));
  }
  return absl::OkStatus();
}

// Checks `in` against the model's config (when it declares the input).
absl::Status CheckAgainstConfig(const ModelInferRequest::InferInputTensor& in, const WireType& type,
                                const ModelSummary& model) {
  const auto spec = std::find_if(model.inputs.begin(), model.inputs.end(),
                                 [&](const InputSpec& s) { return s.name == in.name(); });
  if (spec == model.inputs.end()) {
    std::vector<std::string> names;
    for (const InputSpec& s : model.inputs) names.push_back(s.name);
    return absl::InvalidArgumentError(absl::StrCat("model '", model.name, "' has no input '",
                                                   in.name(),
                                                   "' (inputs: ", absl::StrJoin(names, ", "), ")"));
  }
  if (spec->dtype && *spec->dtype != type.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("input '", in.name(), "': datatype ",
                                                   in.datatype(), "; the model takes ",
                                                   DatatypeName(*spec->dtype)));
  }
  const std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
  bool fits = spec->shape.empty() || spec->shape.size() == shape.size();
  for (size_t i = 0; fits && i < spec->shape.size(); ++i) {
    fits = spec->shape[i] < 0 || spec->shape[i] == shape[i];
  }
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat("input '", in.name(), "': shape ",
                                                   ShapeText(shape), "; the model takes ",
                                                   ShapeText(spec->shape), " (-1: any)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> StoreInput(
    TensorStore* store, const ModelInferRequest& request, size_t index, bool use_raw,
    const RawInputs& raw, const ModelSummary& model, const PutLimits& limits) {
  const ModelInferRequest::InferInputTensor& in = request.inputs(static_cast<int>(index));
  ASSIGN_OR_RETURN(const WireType type, ParseDatatype(in.datatype()));
  RETURN_IF_ERROR(CheckAgainstConfig(in, type, model));
  TensorStore::PutSpec spec;
  spec.ephemeral = true;
  spec.device = "cpu";  // the model moves it
  spec.meta.dtype = type.dtype;
  spec.meta.shape.assign(in.shape().begin(), in.shape().end());
  ASSIGN_OR_RETURN(const uint64_t count, ElementCount(spec.meta.shape, in.name()));
  if (spec.meta.NumBytes() > limits.max_tensor_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("input '", in.name(), "' of ", spec.meta.NumBytes(),
                     " bytes exceeds --max-put-bytes (", limits.max_tensor_bytes, ")"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<TensorWriter> writer, store->BeginPut(spec));
  RETURN_IF_ERROR(use_raw ? AppendRaw(raw, index, type, count, writer.get())
                          : AppendContents(in, type, count, writer.get()));
  return writer->Commit();
}

absl::StatusOr<std::vector<std::string>> CaptureParameter(const ParamMap& params) {
  const auto it = params.find(kCapture);
  if (it == params.end()) return std::vector<std::string>{};
  if (it->second.parameter_choice_case() != InferParameter::kStringParam) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", kCapture, " must be a string such as \"conv1,fc\""));
  }
  return std::vector<std::string>(
      absl::StrSplit(it->second.string_param(), ',', absl::SkipWhitespace()));
}

}  // namespace

absl::StatusOr<ModelSummary> FindServedModel(InferenceEngine* engine, const std::string& name,
                                             const std::string& version) {
  ASSIGN_OR_RETURN(ModelSummary model, engine->Describe(name));
  if (!version.empty() && version != "1") {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no version '", version, "' (it serves version 1)"));
  }
  return model;
}

absl::StatusOr<InferOutcome> RunModelInfer(InferenceEngine* engine, TensorStore* store,
                                           const ModelInferRequest& request, size_t raw_count,
                                           const RawInputs& raw, const InferOptions& options) {
  ASSIGN_OR_RETURN(const ModelSummary model,
                   FindServedModel(engine, request.model_name(), request.model_version()));
  const bool use_raw = raw_count > 0;
  if (use_raw && raw_count != static_cast<size_t>(request.inputs_size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", raw_count, " entries for ", request.inputs_size(), " inputs"));
  }

  InferCall call;
  call.model = request.model_name();
  call.cancelled = options.cancelled;
  call.deadline = options.deadline;
  call.inline_max_bytes = options.max_inline_output_bytes;
  ASSIGN_OR_RETURN(call.capture, CaptureParameter(request.parameters()));
  if (auto ttl = request.parameters().find(kTtl); ttl != request.parameters().end()) {
    if (ttl->second.parameter_choice_case() != InferParameter::kInt64Param ||
        ttl->second.int64_param() < 0 || ttl->second.int64_param() > UINT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", kTtl, " must be an int64 count of seconds"));
    }
    call.ttl_seconds = static_cast<uint32_t>(ttl->second.int64_param());
  }
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& in = request.inputs(i);
    if (use_raw && in.has_contents()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name(), "': give contents or raw_input_contents, not both"));
    }
    absl::StatusOr<std::shared_ptr<const StoredTensor>> tensor =
        StoreInput(store, request, static_cast<size_t>(i), use_raw, raw, model, options.limits);
    if (!tensor.ok()) {
      const std::string prefix = absl::StrCat("input '", in.name(), "'");
      if (absl::StartsWith(tensor.status().message(), prefix) ||
          absl::StartsWith(tensor.status().message(), "model '")) {
        return tensor.status();
      }
      return absl::Status(tensor.status().code(),
                          absl::StrCat(prefix, ": ", tensor.status().message()));
    }
    call.inputs.push_back({in.name(), std::move(*tensor)});
  }
  std::vector<std::string> wanted;  // what comes back, when the request names outputs
  for (const auto& out : request.outputs()) {
    wanted.push_back(out.name());
    if (auto keep = out.parameters().find(kKeep); keep != out.parameters().end()) {
      if (keep->second.parameter_choice_case() != InferParameter::kBoolParam) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", out.name(), "': parameter ", kKeep, " must be a bool"));
      }
      if (keep->second.bool_param()) call.keep.insert(out.name());
    }
    if (std::find(call.capture.begin(), call.capture.end(), out.name()) == call.capture.end()) {
      call.outputs.push_back(out.name());
    }
  }

  ASSIGN_OR_RETURN(InferResult result, engine->Infer(call));
  call.inputs.clear();  // their memory goes back now

  InferOutcome outcome;
  outcome.response.set_model_name(request.model_name());
  outcome.response.set_model_version("1");
  outcome.response.set_id(request.id());
  // Named outputs filter what comes back (an engine call naming no model
  // output returns them all).
  std::vector<std::shared_ptr<const StoredTensor>> all;
  for (const auto* group : {&result.outputs, &result.activations}) {
    for (const auto& t : *group) {
      if (wanted.empty() ||
          std::find(wanted.begin(), wanted.end(), t->info().name) != wanted.end()) {
        all.push_back(t);
      }
    }
  }
  for (const auto& t : all) {
    const TensorInfo& info = t->info();
    const bool kept = call.keep.count(info.name) > 0;
    if (!info.handle.empty() && !kept) {
      // Stored under a handle because it was over the inline limit.
      (void)store->Release(info.handle);
      return absl::ResourceExhaustedError(absl::StrCat(
          "output '", info.name, "' is ", info.nbytes, " bytes, over the ",
          options.max_inline_output_bytes,
          " one response may carry; request it with the output parameter ", kKeep,
          "=true and fetch the handle as .npy (Tensors.Fetch or GET /v1/tensors/{handle}.npy)"));
    }
    const char* datatype = DatatypeName(info.meta.dtype);
    if (*datatype == '\0' && !kept) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", info.name, "' is ", npy::Name(info.meta.dtype),
                       ", which the protocol has no datatype for; request it with ", kKeep,
                       "=true and fetch the .npy"));
    }
    auto* out = outcome.response.add_outputs();
    out->set_name(info.name);
    out->set_datatype(datatype);
    for (int64_t d : info.meta.shape) out->add_shape(d);
    if (kept) {
      (*out->mutable_parameters())[kHandle].set_string_param(info.handle);
      outcome.raw.push_back(nullptr);
    } else {
      outcome.raw.push_back(t);
    }
  }
  return outcome;
}

}  // namespace npystream::oip
