#include "server/http/json_views.h"

#include "server/oip/oip_types.h"

namespace npystream {
namespace {

nlohmann::json HandleJson(const TensorInfo& info) {
  return {{"handle", info.handle},
          {"dtype", npy::Descr(info.meta.dtype)},
          {"shape", info.meta.shape},
          {"device", info.device}};
}

}  // namespace

nlohmann::json TensorInfoJson(const TensorInfo& info) {
  return {{"handle", info.handle},
          {"name", info.name},
          {"dtype", npy::Descr(info.meta.dtype)},
          {"shape", info.meta.shape},
          {"nbytes", info.nbytes},
          {"npy_bytes", info.npy_bytes},
          {"device", info.device},
          {"created_unix_ms", info.created_unix_ms},
          {"expires_unix_ms", info.expires_unix_ms}};
}

nlohmann::json TensorInfoJson(const npystream::v1::TensorInfo& info) {
  return {{"handle", info.handle()},
          {"name", info.name()},
          {"dtype", info.dtype()},
          {"shape", std::vector<int64_t>(info.shape().begin(), info.shape().end())},
          {"nbytes", info.nbytes()},
          {"npy_bytes", info.npy_bytes()},
          {"device", info.device()},
          {"created_unix_ms", info.created_unix_ms()},
          {"expires_unix_ms", info.expires_unix_ms()}};
}

nlohmann::json ModelListingJson(const ModelListing& listing) {
  nlohmann::json models = nlohmann::json::array();
  for (const ModelSummary& m : listing.models) {
    nlohmann::json inputs = nlohmann::json::array();
    for (const InputSpec& in : m.inputs) {
      inputs.push_back({{"name", in.name},
                        {"dtype", in.dtype ? nlohmann::json(npy::Descr(*in.dtype)) : nullptr},
                        {"shape", in.shape}});
    }
    models.push_back({{"name", m.name},
                      {"device", m.device},
                      {"inputs", inputs},
                      {"outputs", m.outputs},
                      {"layers", m.layers},
                      {"max_batch", m.max_batch},
                      {"instances", m.instances}});
  }
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& [name, why] : listing.errors) errors.push_back({{"name", name}, {"error", why}});
  return {{"models", models}, {"errors", errors}};
}

nlohmann::json InferResultJson(const InferResult& result) {
  nlohmann::json outputs = nlohmann::json::object(), activations = nlohmann::json::object();
  for (const auto& t : result.outputs) outputs[t->info().name] = HandleJson(t->info());
  for (const auto& t : result.activations) activations[t->info().name] = HandleJson(t->info());
  return {{"outputs", outputs}, {"activations", activations}, {"infer_ms", result.compute_ms}};
}

nlohmann::json OipServerJson() {
  return {{"name", oip::kServerName},
          {"version", oip::kServerVersion},
          {"extensions", oip::ServerExtensions()}};
}

nlohmann::json OipModelJson(const ModelSummary& model) {
  nlohmann::json inputs = nlohmann::json::array(), outputs = nlohmann::json::array();
  for (const InputSpec& in : model.inputs) {
    inputs.push_back({{"name", in.name},
                      {"datatype", in.dtype ? oip::DatatypeName(*in.dtype) : ""},
                      {"shape", in.shape}});
  }
  for (const std::string& out : model.outputs) {
    outputs.push_back({{"name", out}, {"datatype", ""}, {"shape", nlohmann::json::array()}});
  }
  return {{"name", model.name},
          {"versions", {"1"}},
          {"platform", oip::kPlatform},
          {"inputs", inputs},
          {"outputs", outputs}};
}

nlohmann::json LiveValueJson(const LiveValue& value, const TensorInfo& info) {
  return {{"layer", value.layer},
          {"seq", value.seq},
          {"dtype", npy::Descr(info.meta.dtype)},
          {"shape", info.meta.shape},
          {"infer_ms", value.infer_ms}};
}

}  // namespace npystream
