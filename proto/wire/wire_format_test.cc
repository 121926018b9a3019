#include "proto/wire/wire_format.h"

#include "gtest/gtest.h"
#include "npystream/v1/tensors.pb.h"

namespace npystream::wire {
namespace {

// A FetchResponse framed by hand across several slices parses with the
// generated protobuf code, and the reader recovers the same fields.
TEST(WireFormatTest, HandFramedFetchResponseMatchesProtobuf) {
  npystream::v1::TensorInfo info;
  info.set_handle("h1");
  info.set_dtype("<f4");
  info.add_shape(3);
  info.add_shape(300);
  std::string head;
  const std::string info_bytes = info.SerializeAsString();
  AppendLengthDelimitedPrefix(&head, 1, info_bytes.size());
  head += info_bytes;
  const std::string part1(200, 'a'), part2(70000, 'b');
  AppendLengthDelimitedPrefix(&head, 2, part1.size() + part2.size());
  grpc::Slice slices[] = {grpc::Slice(head), grpc::Slice(part1), grpc::Slice(part2)};
  grpc::ByteBuffer buffer(slices, 3);

  grpc::Slice flat;
  ASSERT_TRUE(buffer.DumpToSingleSlice(&flat).ok());
  npystream::v1::FetchResponse parsed;
  ASSERT_TRUE(parsed.ParseFromArray(flat.begin(), flat.size()));
  EXPECT_EQ(parsed.info().handle(), "h1");
  EXPECT_EQ(parsed.data(), part1 + part2);

  MessageReader reader(buffer);
  MessageReader::Field f;
  ASSERT_TRUE(reader.Next(&f));
  EXPECT_EQ(f.number, 1u);
  std::string got_info;
  ASSERT_TRUE(reader.ReadString(f.value, &got_info));
  EXPECT_EQ(got_info, info_bytes);
  ASSERT_TRUE(reader.Next(&f));
  EXPECT_EQ(f.number, 2u);
  std::string data;
  int pieces = 0;
  ASSERT_TRUE(reader.ReadBytes(f.value, [&](const char* p, size_t n) {
    data.append(p, n);
    ++pieces;
  }));
  EXPECT_EQ(data, part1 + part2);
  EXPECT_GE(pieces, 2);
  EXPECT_FALSE(reader.Next(&f));
  EXPECT_FALSE(reader.error());
}

// True when a reader over `bytes` (one slice) refuses its first field as
// malformed, not as the end of the message.
bool FirstFieldIsMalformed(const std::string& bytes) {
  grpc::Slice slice(bytes);
  grpc::ByteBuffer buffer(&slice, 1);
  MessageReader reader(buffer);
  MessageReader::Field f;
  return !reader.Next(&f) && reader.error();
}

TEST(WireFormatTest, ReaderRejectsLengthsPastTheEnd) {
  std::string bad;
  AppendLengthDelimitedPrefix(&bad, 2, 1000);
  bad += "short";
  EXPECT_TRUE(FirstFieldIsMalformed(bad));
}

// model_infer_fuzz found the reader taking tags that protobuf refuses, so a
// ModelInferRequest protobuf calls malformed was served: field number 0 (then
// a varint), and a 6-byte tag (a non-canonical varint of a valid number,
// then a fixed64). Those, and numbers past 2^29 - 1, are malformed now.
TEST(WireFormatTest, TagsProtobufRefusesAreMalformedFoundByFuzzing) {
  for (const std::string& bytes :
       {std::string("\x00\x40", 2), std::string("\x80\x80\x80\x80\x20\x01"),
        std::string("\x89\x81\x81\x81\x81\x00\xc1\x81\x81\x81\x81\x81\x81\x20", 14)}) {
    EXPECT_TRUE(FirstFieldIsMalformed(bytes));
    npystream::v1::TensorInfo protobuf;
    EXPECT_FALSE(protobuf.ParseFromString(bytes));  // the reference agrees
  }
}

TEST(WireFormatTest, PutRequestFromProtobufReadsBack) {
  npystream::v1::PutRequest req;
  req.mutable_header()->set_name("x");
  req.mutable_header()->set_ttl_seconds(7);
  const std::string bytes = req.SerializeAsString();
  grpc::Slice s(bytes);
  grpc::ByteBuffer buffer(&s, 1);
  MessageReader reader(buffer);
  MessageReader::Field f;
  ASSERT_TRUE(reader.Next(&f));
  EXPECT_EQ(f.number, 1u);
  std::string header;
  ASSERT_TRUE(reader.ReadString(f.value, &header));
  npystream::v1::PutHeader h;
  ASSERT_TRUE(h.ParseFromString(header));
  EXPECT_EQ(h.ttl_seconds(), 7u);
}

}  // namespace
}  // namespace npystream::wire
