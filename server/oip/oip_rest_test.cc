#include "server/oip/oip_rest.h"

#include <cstring>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace npystream::oip {
namespace {

TEST(OipRestTest, JsonDataBecomesRawBytes) {
  const std::string body = R"({"id": "r1", "inputs": [
      {"name": "a", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, -4]]},
      {"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, false]}],
    "outputs": [{"name": "y", "parameters": {"binary_data": true}}],
    "parameters": {"npystream_capture": "conv1", "sequence_id": 0}})";
  RestInferRequest r = *ParseRestInfer("m", body, std::nullopt);
  EXPECT_EQ(r.request.model_name(), "m");
  EXPECT_EQ(r.request.id(), "r1");
  ASSERT_EQ(r.raw.size(), 2u);
  int32_t a[4];
  ASSERT_EQ(r.raw[0].size(), sizeof(a));
  std::memcpy(a, r.raw[0].data(), sizeof(a));
  EXPECT_EQ(a[3], -4);
  EXPECT_EQ(r.raw[1], std::string("\1\0", 2));
  EXPECT_EQ(r.binary_named.count("y"), 1u);
  EXPECT_EQ(r.request.parameters().at("npystream_capture").string_param(), "conv1");
}

TEST(OipRestTest, BinaryDataFollowsTheJsonHeader) {
  const std::string head =
      R"({"inputs": [{"name": "x", "datatype": "FP16", "shape": [3],)"
      R"( "parameters": {"binary_data_size": 6}}], "parameters": {"binary_data_output": true}})";
  const std::string body = head + "abcdef";
  RestInferRequest r = *ParseRestInfer("m", body, head.size());
  ASSERT_EQ(r.raw.size(), 1u);
  EXPECT_EQ(r.raw[0], "abcdef");
  EXPECT_EQ(r.raw[0].data(), body.data() + head.size());  // a view, not a copy
  EXPECT_TRUE(r.binary_outputs);
}

TEST(OipRestTest, MalformedBodiesNameTheDefect) {
  auto error = [](const std::string& body, std::optional<uint64_t> n = std::nullopt) {
    return std::string(ParseRestInfer("m", body, n).status().message());
  };
  EXPECT_EQ(error("{"), "request body is not a JSON object");
  EXPECT_EQ(error("{}"), "request needs an \"inputs\" array");
  EXPECT_EQ(error(R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1]}]})"),
            "input 'x': data holds 1 values; the shape needs 3");
  EXPECT_EQ(error(R"({"inputs": [{"name": "x", "datatype": "FP16", "shape": [1], "data": [1]}]})"),
            "input 'x': FP16 travels only as binary data (parameter binary_data_size)");
  EXPECT_EQ(error(R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]})"),
            "input 'x' has neither \"data\" nor binary_data_size");
  EXPECT_NE(error(R"({"inputs": [{"name": "x", "datatype": "STR", "shape": [1], "data": [1]}]})")
                .find("unknown datatype 'STR'"),
            std::string::npos);
  const std::string head = R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [2],)"
                           R"( "parameters": {"binary_data_size": 2}}]})";
  EXPECT_EQ(error(head + "abc", head.size()),
            "1 bytes of binary data are not claimed by any input's binary_data_size");
  EXPECT_EQ(error(head + "a", head.size()),
            "input 'x': binary_data_size 2 but only 1 bytes of binary data are left");
  EXPECT_NE(error(head, 9999).find("exceeds the body"), std::string::npos);
}

// Found by oip_rest_fuzz: binary_data_size was taken as given, so an empty
// FP32 [0, 3] input claimed 24 bytes; the parser now holds it to the shape.
TEST(OipRestTest, BinaryDataSizeMustMatchTheShapeFoundByFuzzing) {
  const std::string head = R"({"inputs": [{"name": "x", "shape": [0, 3], "datatype": "FP32",)"
                           R"( "parameters": {"binary_data_size": 24}}]})";
  const std::string body = head + std::string(24, '\0');
  auto parsed = ParseRestInfer("m", body, head.size());
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "input 'x': binary_data_size 24 but 0 FP32 elements (its shape) are 0 bytes");
}

// Found by oip_rest_fuzz: a boolean in a UINT8 input's data made json's
// get<uint64_t>() throw out of the parser (the daemon would have aborted).
TEST(OipRestTest, BooleanDataForANumericDatatypeFoundByFuzzing) {
  auto parsed = ParseRestInfer(
      "m", R"({"inputs": [{"name": "s", "shape": [2], "datatype": "UINT8", "data": [true, 1]}]})",
      std::nullopt);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "input 's': data holds a boolean (true) for UINT8");
  EXPECT_TRUE(
      ParseRestInfer(
          "m",
          R"({"inputs": [{"name": "b", "shape": [2], "datatype": "BOOL", "data": [true, 0]}]})",
          std::nullopt)
          .ok());
}

TEST(OipRestTest, RepliesAsJsonOrBinary) {
  auto store = *TensorStore::Create({});
  TensorStore::PutSpec spec;
  spec.ephemeral = true;
  spec.device = "cpu";
  spec.meta.dtype = npy::DType::kFloat32;
  spec.meta.shape = {2};
  auto writer = *store->BeginPut(spec);
  const float v[2] = {1.5f, -2.0f};
  ASSERT_TRUE(writer->Append(reinterpret_cast<const char*>(v), sizeof(v)).ok());
  InferOutcome outcome;
  outcome.response.set_model_name("m");
  outcome.response.set_model_version("1");
  auto* o = outcome.response.add_outputs();
  o->set_name("y");
  o->set_datatype("FP32");
  o->add_shape(2);
  outcome.raw.push_back(*writer->Commit());
  RestInferRequest as_json;
  RestInferReply reply = *FormatRestInfer(outcome, as_json);
  EXPECT_EQ(reply.json, R"({"model_name":"m","model_version":"1","outputs":[{"data":[1.5,-2.0],)"
                        R"("datatype":"FP32","name":"y","shape":[2]}]})");
  EXPECT_TRUE(reply.binary.empty());
  RestInferRequest as_binary;
  as_binary.binary_named.insert("y");
  reply = *FormatRestInfer(outcome, as_binary);
  EXPECT_EQ(nlohmann::json::parse(reply.json)["outputs"][0]["parameters"]["binary_data_size"], 8);
  ASSERT_EQ(reply.binary.size(), 1u);
}

}  // namespace
}  // namespace npystream::oip
