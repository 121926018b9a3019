// Hand framing of protobuf messages that carry bulk bytes (FetchResponse,
// PutRequest), so payloads travel as grpc::Slices and never pass through a
// protobuf object. Mirrors the generated messages' wire encoding exactly.
#ifndef NPYSTREAM_PROTO_WIRE_WIRE_FORMAT_H_
#define NPYSTREAM_PROTO_WIRE_WIRE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace npystream::wire {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
// Field numbers are 1 .. 2^29 - 1, and a tag's varint is at most 5 bytes;
// anything else is malformed.
constexpr uint64_t kMaxFieldNumber = (uint64_t{1} << 29) - 1;
constexpr int kMaxTagBytes = 5;

// Appends `value` as a base-128 varint.
void AppendVarint(std::string* out, uint64_t value);
// Appends the tag and length that precede a length-delimited field.
void AppendLengthDelimitedPrefix(std::string* out, uint32_t field, uint64_t length);

// Reads a message held in a grpc::ByteBuffer field by field without copying
// it into one piece. Not thread-safe; the ByteBuffer's slices are shared.
class MessageReader {
 public:
  explicit MessageReader(const grpc::ByteBuffer& buffer);

  struct Field {
    uint32_t number = 0;
    WireType type = kVarint;
    uint64_t value = 0;  // the varint, or the length of a length-delimited field
  };

  // Reads the next tag (and varint value or length). Returns false at the end
  // of the message; sets error() when the bytes are malformed (as protobuf
  // judges them: also field number 0 or over kMaxFieldNumber; groups, which
  // no message here uses, are refused).
  bool Next(Field* field);
  // For a length-delimited field: hands its bytes to `sink` piece by piece
  // (one call per slice it spans), consuming `length` bytes. The pieces stay
  // valid while this reader lives, not merely the ByteBuffer: gRPC keeps a
  // small slice's bytes inside the slice object, which the reader copied.
  template <typename Sink>
  bool ReadBytes(uint64_t length, Sink&& sink);
  // Copies `length` bytes into `out`.
  bool ReadString(uint64_t length, std::string* out);
  bool Skip(const Field& field);
  bool error() const { return error_; }
  // Bytes left in the message.
  uint64_t remaining() const { return remaining_; }

 private:
  bool ReadByte(uint8_t* b);
  // At most `max_bytes` bytes (a tag: 5, as protobuf reads it).
  bool ReadVarint(uint64_t* v, int max_bytes = 10);

  std::vector<grpc::Slice> slices_;
  size_t slice_ = 0;
  size_t offset_ = 0;
  uint64_t remaining_ = 0;
  bool error_ = false;
};

template <typename Sink>
bool MessageReader::ReadBytes(uint64_t length, Sink&& sink) {
  if (length > remaining_) {
    error_ = true;
    return false;
  }
  while (length > 0) {
    const grpc::Slice& s = slices_[slice_];
    const size_t avail = s.size() - offset_;
    if (avail == 0) {
      ++slice_;
      offset_ = 0;
      continue;
    }
    const size_t n = length < avail ? static_cast<size_t>(length) : avail;
    sink(reinterpret_cast<const char*>(s.begin()) + offset_, n);
    offset_ += n;
    length -= n;
    remaining_ -= n;
  }
  return true;
}

}  // namespace npystream::wire

#endif  // NPYSTREAM_PROTO_WIRE_WIRE_FORMAT_H_
