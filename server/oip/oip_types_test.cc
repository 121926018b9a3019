#include "server/oip/oip_types.h"

#include <cstring>

#include "gtest/gtest.h"

namespace npystream::oip {
namespace {

TEST(OipTypesTest, EveryNumericDatatypeRoundTrips) {
  for (const char* name : {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                           "INT64", "FP16", "FP32", "FP64"}) {
    const WireType t = *ParseDatatype(name);
    EXPECT_STREQ(DatatypeName(t.dtype), name);
    EXPECT_EQ(t.wire_bytes, static_cast<size_t>(npy::ItemSize(t.dtype))) << name;
    EXPECT_FALSE(t.bf16);
    EXPECT_GT(ConfigDataType(t.dtype), 0) << name;
  }
  const WireType bf16 = *ParseDatatype("BF16");
  EXPECT_TRUE(bf16.bf16);
  EXPECT_EQ(bf16.wire_bytes, 2u);
  EXPECT_EQ(bf16.dtype, npy::DType::kFloat32);          // widened
  EXPECT_EQ(ConfigDataType(npy::DType::kFloat32), 11);  // Triton's TYPE_FP32
  EXPECT_STREQ(DatatypeName(npy::DType::kComplex64), "");
}

TEST(OipTypesTest, RefusalsNameTheDatatype) {
  EXPECT_EQ(ParseDatatype("BYTES").status().message(),
            "datatype BYTES is not served (numeric tensors only)");
  EXPECT_EQ(ParseDatatype("fp32").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ParseDatatype("FLOAT").status().message().find("'FLOAT'"), std::string::npos);
  EXPECT_EQ(ElementCount({2, -1}, "x").status().message(),
            "input 'x': shape has a negative dimension -1");
  EXPECT_FALSE(ElementCount({1 << 30, 1 << 30, 1 << 30}, "x").ok());
  EXPECT_EQ(*ElementCount({}, "x"), 1u);
  EXPECT_EQ(*ElementCount({3, 0}, "x"), 0u);
}

TEST(OipTypesTest, Bf16WidensExactly) {
  const float values[] = {1.0f, -2.5f, 3.140625f, 0.0f};
  char bits[8];
  for (int i = 0; i < 4; ++i) {
    uint32_t f;
    std::memcpy(&f, &values[i], 4);
    const uint16_t top = static_cast<uint16_t>(f >> 16);
    std::memcpy(bits + 2 * i, &top, 2);
  }
  float out[4];
  WidenBf16(bits, 4, out);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], values[i]);
}

}  // namespace
}  // namespace npystream::oip
