#include "server/engine/model_config.h"

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(ModelConfigTest, ParsesEveryKey) {
  auto c = ParseModelConfig(R"({"device": "cpu", "inputs": [{"name": "x", "dtype": "float32",
      "shape": [-1, 1, 28, 28]}, {"name": "m", "dtype": "<i8"}], "outputs": ["logits"],
      "layers": ["conv1"], "max_batch": 64, "instances": 3})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->device, "cpu");
  ASSERT_EQ(c->inputs.size(), 2u);
  EXPECT_EQ(*c->inputs[0].dtype, npy::DType::kFloat32);
  EXPECT_EQ(c->inputs[0].shape, (std::vector<int64_t>{-1, 1, 28, 28}));
  EXPECT_EQ(*c->inputs[1].dtype, npy::DType::kInt64);
  EXPECT_EQ(c->outputs, std::vector<std::string>{"logits"});
  EXPECT_EQ(c->max_batch, 64u);
  EXPECT_EQ(c->instances, 3u);
}

TEST(ModelConfigTest, DefaultsAndErrors) {
  auto c = ParseModelConfig("{}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->instances, 1u);
  EXPECT_EQ(c->device, "auto");
  EXPECT_NE(ParseModelConfig("{").status().message().find("not a JSON object"), std::string::npos);
  EXPECT_NE(ParseModelConfig(R"({"colour": 1})").status().message().find("unknown key 'colour'"),
            std::string::npos);
  EXPECT_FALSE(ParseModelConfig(R"({"inputs": [{"dtype": "float32"}]})").ok());
  EXPECT_FALSE(ParseModelConfig(R"({"inputs": [{"name": "x", "dtype": "str"}]})").ok());
  EXPECT_FALSE(ParseModelConfig(R"({"instances": 0})").ok());
  EXPECT_FALSE(ParseModelConfig(R"({"max_batch": "many"})").ok());
}

TEST(ModelConfigTest, DynamicBatching) {
  auto c = ParseModelConfig(R"({"dynamic_batching": {"max_batch": 32, "max_queue_delay_us": 200,
                                                      "preferred_batch_sizes": [16, 8]}})");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->dynamic_batching.has_value());
  EXPECT_EQ(c->dynamic_batching->max_batch, 32u);
  EXPECT_EQ(c->dynamic_batching->max_queue_delay_us, 200u);
  EXPECT_EQ(c->dynamic_batching->preferred_batch_sizes, (std::vector<uint32_t>{8, 16}));
  EXPECT_FALSE(ParseModelConfig("{}")->dynamic_batching.has_value());
  auto defaults = ParseModelConfig(R"({"dynamic_batching": {}})");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->dynamic_batching->max_batch, 64u);
  EXPECT_EQ(defaults->dynamic_batching->max_queue_delay_us, 500u);
  for (const char* bad :
       {R"({"dynamic_batching": 1})", R"({"dynamic_batching": {"max_batch": 0}})",
        R"({"dynamic_batching": {"max_batch": 8, "preferred_batch_sizes": [16]}})",
        R"({"dynamic_batching": {"delay": 5}})"}) {
    EXPECT_EQ(ParseModelConfig(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// nlohmann converts -1 to 4294967295 and 2.5 to 2 without a word.
TEST(ModelConfigTest, CountsMustBeWholeNonNegative32BitNumbers) {
  for (const char* bad : {R"({"instances": -1})", R"({"instances": 2.5})",
                          R"({"max_batch": 4294967296})", R"({"max_batch": true})"}) {
    auto c = ParseModelConfig(bad);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(c.status().message().find("must be a whole number"), std::string::npos) << bad;
  }
  auto c = ParseModelConfig(R"({"instances": 3, "max_batch": 4294967295})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instances, 3u);
  EXPECT_EQ(c->max_batch, 4294967295u);
}

}  // namespace
}  // namespace npystream
