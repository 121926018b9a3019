#include "server/http/byte_range.h"

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(ByteRangeTest, ParsesTheForms) {
  uint64_t a = 0, b = 0;
  bool whole = false;
  ASSERT_TRUE(ParseByteRange("bytes=0-99", 1000, &a, &b, &whole));
  EXPECT_FALSE(whole);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 99u);
  ASSERT_TRUE(ParseByteRange("bytes=900-", 1000, &a, &b, &whole));
  EXPECT_EQ(a, 900u);
  EXPECT_EQ(b, 999u);
  ASSERT_TRUE(ParseByteRange("bytes=-50", 1000, &a, &b, &whole));
  EXPECT_EQ(a, 950u);
  EXPECT_EQ(b, 999u);
  ASSERT_TRUE(ParseByteRange("bytes=990-5000", 1000, &a, &b, &whole));
  EXPECT_EQ(b, 999u);
  ASSERT_TRUE(ParseByteRange("bytes=0-1,5-6", 1000, &a, &b, &whole));
  EXPECT_TRUE(whole);
}

TEST(ByteRangeTest, RefusesUnsatisfiable) {
  uint64_t a = 0, b = 0;
  bool whole = false;
  EXPECT_FALSE(ParseByteRange("bytes=1000-", 1000, &a, &b, &whole));
  EXPECT_FALSE(ParseByteRange("bytes=5-4", 1000, &a, &b, &whole));
  EXPECT_FALSE(ParseByteRange("bytes=-0", 1000, &a, &b, &whole));
  EXPECT_FALSE(ParseByteRange("items=0-1", 1000, &a, &b, &whole));
  EXPECT_FALSE(ParseByteRange("bytes=x-1", 1000, &a, &b, &whole));
}

}  // namespace
}  // namespace npystream
