#include "proto/wire/socket_fetch.h"

#include <string>

#include "gtest/gtest.h"

namespace npystream::wire {
namespace {

TEST(SocketFetchTest, PathIsBesideTheUnixListenerOnly) {
  EXPECT_EQ(SocketFetchPath("unix:///run/npystream.sock"), "/run/npystream.sock.fetch");
  EXPECT_EQ(SocketFetchPath("unix:relative.sock"), "relative.sock.fetch");
  EXPECT_EQ(SocketFetchPath("127.0.0.1:50051"), "");
  EXPECT_EQ(SocketFetchPath("unix://"), "");
}

TEST(SocketFetchTest, RequestRoundTripsWithLittleEndianLengths) {
  const std::string request = EncodeSocketFetchRequest("Bearer t", "weights");
  ASSERT_EQ(request.size(), kSocketFetchPrefixBytes + 8 + 7);
  // Written from the spec, not from the encoder: magic, then 8 and 7 as u32 LE.
  EXPECT_EQ(request.substr(0, 12), std::string("NPF1\x08\0\0\0\x07\0\0\0", 12));
  auto lengths = DecodeSocketFetchPrefix(request);
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  EXPECT_EQ(lengths->authorization, 8u);
  EXPECT_EQ(lengths->handle, 7u);
  EXPECT_EQ(request.substr(12), "Bearer tweights");
}

TEST(SocketFetchTest, BadPrefixesNameTheirDefect) {
  auto short_prefix = DecodeSocketFetchPrefix("NPF1\x01");
  EXPECT_EQ(short_prefix.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_prefix.status().message().find("prefix is 5 bytes"), std::string::npos);
  auto http = DecodeSocketFetchPrefix("PRI * HTTP/2.0");
  EXPECT_NE(http.status().message().find("NPF1"), std::string::npos);
  auto no_handle = DecodeSocketFetchPrefix(std::string("NPF1\0\0\0\0\0\0\0\0", 12));
  EXPECT_NE(no_handle.status().message().find("no handle"), std::string::npos);
  auto big_handle = DecodeSocketFetchPrefix(std::string("NPF1\0\0\0\0\x01\x10\0\0", 12));
  EXPECT_NE(big_handle.status().message().find("handle of 4097 bytes"), std::string::npos);
  auto big_auth = DecodeSocketFetchPrefix(std::string("NPF1\xff\xff\xff\xff\x01\0\0\0", 12));
  EXPECT_NE(big_auth.status().message().find("authorization of 4294967295"), std::string::npos);
}

TEST(SocketFetchTest, ReplyPrefixRoundTripsAndBoundsItsLength) {
  auto reply = DecodeSocketFetchReplyPrefix(EncodeSocketFetchReplyPrefix(5, 17));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->code, 5u);
  EXPECT_EQ(reply->length, 17u);
  EXPECT_EQ(DecodeSocketFetchReplyPrefix(EncodeSocketFetchReplyPrefix(0, kSocketFetchMaxReply + 1))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeSocketFetchReplyPrefix("NPF1").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace npystream::wire
