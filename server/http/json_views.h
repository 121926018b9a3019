// The admin port's JSON documents, built apart from the connection that
// sends them (so their shape is unit-tested).
#ifndef NPYSTREAM_SERVER_HTTP_JSON_VIEWS_H_
#define NPYSTREAM_SERVER_HTTP_JSON_VIEWS_H_

#include "nlohmann/json.hpp"
#include "npystream/v1/tensors.pb.h"
#include "server/engine/inference_engine.h"
#include "server/engine/subscriptions.h"
#include "server/store/tensor_store.h"

namespace npystream {

// {"handle", "name", "dtype", "shape", "nbytes", "npy_bytes", "device",
//  "created_unix_ms", "expires_unix_ms"}: one row of GET /v1/tensors.
nlohmann::json TensorInfoJson(const TensorInfo& info);
// The same from the wire's TensorInfo (another replica's, relayed).
nlohmann::json TensorInfoJson(const npystream::v1::TensorInfo& info);

// GET /v1/models: {"models": [{"name", "device", "inputs": [{"name",
// "dtype" (descr or null), "shape"}], "outputs", "layers", "max_batch",
// "instances"}], "errors": [{"name", "error"}]}.
nlohmann::json ModelListingJson(const ModelListing& listing);

// POST /v1/models/{m}/infer: {"outputs": {name: {"handle", "dtype",
// "shape"}}, "activations": {layer: {...}}, "infer_ms"}.
nlohmann::json InferResultJson(const InferResult& result);

// GET /v2: {"name", "version", "extensions"}.
nlohmann::json OipServerJson();
// GET /v2/models/{m}: {"name", "versions", "platform", "inputs": [{"name",
// "datatype", "shape"}], "outputs": [...]}.
nlohmann::json OipModelJson(const ModelSummary& model);

// The text frame sent before a live value's .npy: {"layer", "seq", "dtype",
// "shape", "infer_ms"}; dtype and shape from `info`, what is sent (the
// value's own info, or its view's).
nlohmann::json LiveValueJson(const LiveValue& value, const TensorInfo& info);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_JSON_VIEWS_H_
