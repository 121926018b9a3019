#include "server/oip/oip_types.h"

#include <cstring>

#include "gtest/gtest.h"

namespace npystream::oip {
namespace {

TEST(OipTypesTest, EveryNumericDatatypeRoundTrips) {
  for (const char* name :
       {"BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}) {
    const WireType t = *ParseDatatype(name);
    EXPECT_STREQ(DatatypeName(t.dtype), name);
    EXPECT_EQ(t.wire_bytes, static_cast<size_t>(npy::ItemSize(t.dtype))) << name;
    EXPECT_EQ(t.widen, WireType::Widen::kNone);
    EXPECT_GT(ConfigDataType(t.dtype), 0) << name;
  }
  EXPECT_EQ(ParseDatatype("UINT16")->dtype, npy::DType::kInt32);
  EXPECT_EQ(ParseDatatype("UINT32")->dtype, npy::DType::kInt64);
  EXPECT_EQ(ParseDatatype("UINT64")->wire_bytes, 8u);
  EXPECT_STREQ(DatatypeName(npy::DType::kUInt16), "UINT16");  // a stored uint16 still has a name
  const WireType bf16 = *ParseDatatype("BF16");
  EXPECT_EQ(bf16.widen, WireType::Widen::kBf16);
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

TEST(OipTypesTest, UnsignedWidenExactlyAndUint64Overflows) {
  const uint64_t ok[2] = {0, uint64_t{INT64_MAX}};
  int64_t out[2];
  ASSERT_TRUE(WidenElements(*ParseDatatype("UINT64"), reinterpret_cast<const char*>(ok), 2,
                            reinterpret_cast<char*>(out))
                  .ok());
  EXPECT_EQ(out[1], INT64_MAX);
  const uint64_t big = uint64_t{INT64_MAX} + 1;
  EXPECT_EQ(WidenElements(*ParseDatatype("UINT64"), reinterpret_cast<const char*>(&big), 1,
                          reinterpret_cast<char*>(out))
                .message(),
            "UINT64 value 9223372036854775808 exceeds INT64_MAX (LibTorch has no uint64 tensors)");
  const uint16_t u16[2] = {65535, 1};
  int32_t w[2];
  ASSERT_TRUE(WidenElements(*ParseDatatype("UINT16"), reinterpret_cast<const char*>(u16), 2,
                            reinterpret_cast<char*>(w))
                  .ok());
  EXPECT_EQ(w[0], 65535);
}

}  // namespace
}  // namespace npystream::oip
