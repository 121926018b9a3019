#include "server/oip/oip_rest.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/json_text.h"
#include "server/common/status_macros.h"
#include "server/oip/oip_types.h"

namespace npystream::oip {
namespace {

using nlohmann::json;

// Flattens nested JSON arrays (the protocol allows either form).
void Flatten(const json& data, std::vector<const json*>* out) {
  if (data.is_array()) {
    for (const json& d : data) Flatten(d, out);
  } else {
    out->push_back(&data);
  }
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// JSON numbers/booleans -> the raw little-endian bytes of `type`.
absl::StatusOr<std::string> EncodeJsonData(const json& data, const WireType& type,
                                           absl::string_view datatype, uint64_t count) {
  std::vector<const json*> values;
  Flatten(data, &values);
  if (values.size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("data holds ", values.size(), " values; the shape needs ", count));
  }
  if (type.widen == WireType::Widen::kBf16 || type.dtype == npy::DType::kFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat(datatype, " travels only as binary data (parameter binary_data_size)"));
  }
  std::string out;
  out.reserve(count * type.wire_bytes);
  for (const json* v : values) {
    if (!v->is_number() && !v->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat("data holds a non-number: ", v->dump()));
    }
    // Only BOOL takes true/false (json's get<int>() on a boolean throws).
    if (v->is_boolean() && type.dtype != npy::DType::kBool) {
      return absl::InvalidArgumentError(
          absl::StrCat("data holds a boolean (", v->dump(), ") for ", datatype));
    }
    const double d = v->is_boolean() ? (v->get<bool>() ? 1.0 : 0.0) : v->get<double>();
    // Wire format: unsigned types travel as themselves and are widened later.
    if (type.widen == WireType::Widen::kUInt16) {
      Put<uint16_t>(&out, static_cast<uint16_t>(v->get<uint64_t>()));
      continue;
    }
    if (type.widen == WireType::Widen::kUInt32) {
      Put<uint32_t>(&out, static_cast<uint32_t>(v->get<uint64_t>()));
      continue;
    }
    if (type.widen == WireType::Widen::kUInt64) {
      Put<uint64_t>(&out, v->get<uint64_t>());
      continue;
    }
    switch (type.dtype) {
      case npy::DType::kBool:
        Put<uint8_t>(&out, d != 0);
        break;
      case npy::DType::kInt8:
        Put<int8_t>(&out, static_cast<int8_t>(v->get<int64_t>()));
        break;
      case npy::DType::kInt16:
        Put<int16_t>(&out, static_cast<int16_t>(v->get<int64_t>()));
        break;
      case npy::DType::kInt32:
        Put<int32_t>(&out, static_cast<int32_t>(v->get<int64_t>()));
        break;
      case npy::DType::kInt64:
        Put<int64_t>(&out, v->get<int64_t>());
        break;
      case npy::DType::kUInt8:
        Put<uint8_t>(&out, static_cast<uint8_t>(v->get<uint64_t>()));
        break;
      case npy::DType::kUInt16:
        Put<uint16_t>(&out, static_cast<uint16_t>(v->get<uint64_t>()));
        break;
      case npy::DType::kUInt32:
        Put<uint32_t>(&out, static_cast<uint32_t>(v->get<uint64_t>()));
        break;
      case npy::DType::kUInt64:
        Put<uint64_t>(&out, v->get<uint64_t>());
        break;
      case npy::DType::kFloat32:
        Put<float>(&out, static_cast<float>(d));
        break;
      default:
        Put<double>(&out, d);
        break;
    }
  }
  return out;
}

template <typename T>
void AppendValues(const char* data, uint64_t count, json* out) {
  for (uint64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    out->push_back(v);
  }
}

absl::StatusOr<json> DecodeToJson(const StoredTensor& t) {
  const TensorInfo& info = t.info();
  const uint64_t n = info.meta.NumElements();
  const char* p = t.host_data();
  json out = json::array();
  switch (info.meta.dtype) {
    case npy::DType::kBool:
      for (uint64_t i = 0; i < n; ++i) out.push_back(p[i] != 0);
      return out;
    case npy::DType::kInt8:
      AppendValues<int8_t>(p, n, &out);
      return out;
    case npy::DType::kInt16:
      AppendValues<int16_t>(p, n, &out);
      return out;
    case npy::DType::kInt32:
      AppendValues<int32_t>(p, n, &out);
      return out;
    case npy::DType::kInt64:
      AppendValues<int64_t>(p, n, &out);
      return out;
    case npy::DType::kUInt8:
      AppendValues<uint8_t>(p, n, &out);
      return out;
    case npy::DType::kUInt16:
      AppendValues<uint16_t>(p, n, &out);
      return out;
    case npy::DType::kUInt32:
      AppendValues<uint32_t>(p, n, &out);
      return out;
    case npy::DType::kUInt64:
      AppendValues<uint64_t>(p, n, &out);
      return out;
    case npy::DType::kFloat32:
      AppendValues<float>(p, n, &out);
      return out;
    case npy::DType::kFloat64:
      AppendValues<double>(p, n, &out);
      return out;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("output '", info.name, "' is ", npy::Name(info.meta.dtype),
                       ": ask for it as binary data (output parameter binary_data: true)"));
  }
}

absl::Status SetParameter(const json& value, inference::InferParameter* p) {
  if (value.is_boolean()) {
    p->set_bool_param(value.get<bool>());
  } else if (value.is_number_integer()) {
    p->set_int64_param(value.get<int64_t>());
  } else if (value.is_number()) {
    p->set_double_param(value.get<double>());
  } else if (value.is_string()) {
    p->set_string_param(value.get<std::string>());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter value ", value.dump(), " is not a bool, number or string"));
  }
  return absl::OkStatus();
}

absl::Status SetParameters(const json& object, absl::string_view where,
                           google::protobuf::Map<std::string, inference::InferParameter>* out) {
  if (object.is_null()) return absl::OkStatus();
  if (!object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": parameters must be an object"));
  }
  for (const auto& [key, value] : object.items()) {
    absl::Status s = SetParameter(value, &(*out)[key]);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RestInferRequest> ParseRestInfer(absl::string_view model, absl::string_view body,
                                                std::optional<uint64_t> json_length) {
  if (json_length && *json_length > body.size()) {
    return absl::InvalidArgumentError(absl::StrCat(kHeaderLengthField, " ", *json_length,
                                                   " exceeds the body's ", body.size(), " bytes"));
  }
  const absl::string_view head = json_length ? body.substr(0, *json_length) : body;
  absl::string_view binary = json_length ? body.substr(*json_length) : absl::string_view();
  const json doc = json::parse(head.begin(), head.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("request body is not a JSON object");
  }
  RestInferRequest out;
  inference::ModelInferRequest& req = out.request;
  req.set_model_name(std::string(model));
  if (doc.contains("id") && doc["id"].is_string()) req.set_id(doc["id"].get<std::string>());
  RETURN_IF_ERROR(
      SetParameters(doc.value("parameters", json()), "request", req.mutable_parameters()));
  if (auto it = req.parameters().find("binary_data_output"); it != req.parameters().end()) {
    out.binary_outputs = it->second.bool_param();
  }
  if (!doc.contains("inputs") || !doc["inputs"].is_array()) {
    return absl::InvalidArgumentError("request needs an \"inputs\" array");
  }
  for (const json& in : doc["inputs"]) {
    if (!in.is_object() || !in.contains("name") || !in["name"].is_string() ||
        !in.contains("datatype") || !in["datatype"].is_string() || !in.contains("shape") ||
        !in["shape"].is_array()) {
      return absl::InvalidArgumentError("each input needs \"name\", \"datatype\" and \"shape\"");
    }
    const std::string name = in["name"].get<std::string>();
    auto* t = req.add_inputs();
    t->set_name(name);
    t->set_datatype(in["datatype"].get<std::string>());
    std::vector<int64_t> shape;
    for (const json& d : in["shape"]) {
      if (!d.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", name, "': shape must be integers"));
      }
      shape.push_back(d.get<int64_t>());
      t->add_shape(shape.back());
    }
    RETURN_IF_ERROR(SetParameters(in.value("parameters", json()),
                                  absl::StrCat("input '", name, "'"), t->mutable_parameters()));
    absl::StatusOr<WireType> type = ParseDatatype(t->datatype());
    if (!type.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': ", type.status().message()));
    }
    ASSIGN_OR_RETURN(const uint64_t count, ElementCount(shape, name));
    if (auto size = t->parameters().find("binary_data_size"); size != t->parameters().end()) {
      const int64_t n = size->second.int64_param();
      if (n < 0 || static_cast<uint64_t>(n) > binary.size()) {
        return absl::InvalidArgumentError(absl::StrCat("input '", name, "': binary_data_size ", n,
                                                       " but only ", binary.size(),
                                                       " bytes of binary data are left"));
      }
      if (static_cast<uint64_t>(n) != count * type->wire_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", name, "': binary_data_size ", n, " but ", count, " ", t->datatype(),
            " elements (its shape) are ", count * type->wire_bytes, " bytes"));
      }
      out.raw.push_back(binary.substr(0, static_cast<size_t>(n)));
      binary.remove_prefix(static_cast<size_t>(n));
    } else if (in.contains("data")) {
      absl::StatusOr<std::string> raw = EncodeJsonData(in["data"], *type, t->datatype(), count);
      if (!raw.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", name, "': ", raw.status().message()));
      }
      out.owned.push_back(std::move(*raw));
      out.raw.push_back(out.owned.back());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "' has neither \"data\" nor binary_data_size"));
    }
  }
  if (!binary.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(binary.size(),
                                                   " bytes of binary data are not claimed by "
                                                   "any input's binary_data_size"));
  }
  if (doc.contains("outputs")) {
    if (!doc["outputs"].is_array())
      return absl::InvalidArgumentError("\"outputs\" must be an array");
    for (const json& o : doc["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        return absl::InvalidArgumentError("each output needs a \"name\"");
      }
      auto* r = req.add_outputs();
      r->set_name(o["name"].get<std::string>());
      RETURN_IF_ERROR(SetParameters(o.value("parameters", json()),
                                    absl::StrCat("output '", r->name(), "'"),
                                    r->mutable_parameters()));
      if (auto b = r->parameters().find("binary_data");
          b != r->parameters().end() && b->second.bool_param()) {
        out.binary_named.insert(r->name());
      }
    }
  }
  return out;
}

absl::StatusOr<RestInferReply> FormatRestInfer(const InferOutcome& outcome,
                                               const RestInferRequest& request) {
  RestInferReply reply;
  const inference::ModelInferResponse& r = outcome.response;
  json doc = {{"model_name", r.model_name()}, {"model_version", r.model_version()}};
  if (!r.id().empty()) doc["id"] = r.id();
  json outputs = json::array();
  for (int i = 0; i < r.outputs_size(); ++i) {
    const auto& o = r.outputs(i);
    json out = {{"name", o.name()}, {"datatype", o.datatype()}, {"shape", o.shape()}};
    const auto& tensor = outcome.raw[static_cast<size_t>(i)];
    if (tensor == nullptr) {  // kept: its handle
      out["parameters"] = {
          {"npystream_handle", o.parameters().at("npystream_handle").string_param()}};
    } else if (request.binary_outputs || request.binary_named.count(o.name()) > 0) {
      out["parameters"] = {{"binary_data_size", tensor->info().nbytes}};
      reply.binary.push_back(tensor);
    } else {
      ASSIGN_OR_RETURN(out["data"], DecodeToJson(*tensor));
    }
    outputs.push_back(std::move(out));
  }
  doc["outputs"] = std::move(outputs);
  reply.json = JsonText(doc);
  return reply;
}

}  // namespace npystream::oip
