#include "server/http/gzip_encoder.h"

#include <zlib.h>

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace npystream {
namespace {

// An independent decoder: zlib's inflate in gzip mode, in one call.
std::string Gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 22, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  EXPECT_EQ(z.avail_in, 0u);  // nothing after the member's trailer
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST(GzipEncoderTest, PiecesDecodeToTheInput) {
  std::mt19937 rng(7);
  std::string input(3 << 20, '\0');
  for (size_t i = 0; i < input.size(); ++i) input[i] = (i % 3 == 0) ? char(rng()) : 0;
  auto e = GzipEncoder::Create();
  ASSERT_TRUE(e.ok()) << e.status();
  std::string gz;
  size_t pos = 0;
  for (size_t piece : {size_t{0}, size_t{1}, size_t{1000}, size_t{1 << 20}, size_t{77777}}) {
    ASSERT_TRUE((*e)->Append(input.substr(pos, piece), false, &gz).ok());
    pos += piece;
  }
  ASSERT_TRUE((*e)->Append(input.substr(pos), true, &gz).ok());
  EXPECT_EQ(Gunzip(gz), input);
  EXPECT_EQ((*e)->bytes_in(), input.size());
  EXPECT_EQ((*e)->bytes_out(), gz.size());
  EXPECT_LT(gz.size(), input.size() / 2);
  EXPECT_EQ((*e)->Append("x", true, &gz).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(GzipEncoderTest, EmptyInputIsAValidMember) {
  auto e = GzipEncoder::Create();
  ASSERT_TRUE(e.ok());
  std::string gz;
  ASSERT_TRUE((*e)->Append("", true, &gz).ok());
  EXPECT_EQ(Gunzip(gz), "");
}

TEST(GzipEncoderTest, AcceptEncoding) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("deflate, br"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.000"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=abc"));
  EXPECT_FALSE(AcceptsGzip("gzipx"));
}

}  // namespace
}  // namespace npystream
