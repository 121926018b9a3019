#include "server/http/json_views.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(JsonViewsTest, ModelListingNamesInputsOutputsAndLayers) {
  ModelListing listing;
  ModelSummary m;
  m.name = "demo";
  m.device = "cpu";
  m.inputs = {InputSpec{"x", npy::DType::kFloat32, {-1, 1, 28, 28}}, InputSpec{"any", {}, {}}};
  m.outputs = {"logits"};
  m.layers = {"conv1", "fc"};
  m.max_batch = 256;
  m.instances = 2;
  listing.models.push_back(m);
  listing.errors.push_back({"broken", "not TorchScript"});
  const nlohmann::json j = ModelListingJson(listing);
  EXPECT_EQ(j.dump(),
            R"({"errors":[{"error":"not TorchScript","name":"broken"}],"models":[{"device":"cpu",)"
            R"("inputs":[{"dtype":"<f4","name":"x","shape":[-1,1,28,28]},{"dtype":null,"name":)"
            R"("any","shape":[]}],"instances":2,"layers":["conv1","fc"],"max_batch":256,"name":)"
            R"("demo","outputs":["logits"]}]})");
}

TEST(JsonViewsTest, InferResultAndLiveValueDescribeTheTensors) {
  auto store = *TensorStore::Create({});
  auto logits = *store->Insert(at::zeros({2, 10}), npy::DType::kFloat32,
                               TensorStore::InsertOptions{"", "logits", 0, false});
  auto conv = *store->Insert(at::zeros({2, 8, 28, 28}), npy::DType::kFloat32,
                             TensorStore::InsertOptions{"", "conv1", 0, false});
  InferResult result;
  result.outputs = {logits};
  result.activations = {conv};
  result.compute_ms = 1.25;
  const nlohmann::json j = InferResultJson(result);
  EXPECT_EQ(j["outputs"]["logits"]["handle"], logits->info().handle);
  EXPECT_EQ(j["outputs"]["logits"]["dtype"], "<f4");
  EXPECT_EQ(j["outputs"]["logits"]["shape"], nlohmann::json({2, 10}));
  EXPECT_EQ(j["activations"]["conv1"]["shape"], nlohmann::json({2, 8, 28, 28}));
  EXPECT_EQ(j["infer_ms"], 1.25);

  const nlohmann::json live = LiveValueJson(LiveValue{"conv1", 7, 0.5, conv}, conv->info());
  EXPECT_EQ(live.dump(),
            R"({"dtype":"<f4","infer_ms":0.5,"layer":"conv1","seq":7,"shape":[2,8,28,28]})");
  const nlohmann::json row = TensorInfoJson(logits->info());
  EXPECT_EQ(row["nbytes"], 80);
  EXPECT_EQ(row["npy_bytes"], 80 + logits->npy_header().size());
}

}  // namespace
}  // namespace npystream
