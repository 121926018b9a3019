#include "proto/wire/wire_format.h"

namespace npystream::wire {

void AppendVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void AppendLengthDelimitedPrefix(std::string* out, uint32_t field, uint64_t length) {
  AppendVarint(out, (uint64_t{field} << 3) | kLengthDelimited);
  AppendVarint(out, length);
}

MessageReader::MessageReader(const grpc::ByteBuffer& buffer) {
  if (!buffer.Dump(&slices_).ok()) {
    error_ = true;
    return;
  }
  for (const grpc::Slice& s : slices_) remaining_ += s.size();
}

bool MessageReader::ReadByte(uint8_t* b) {
  while (slice_ < slices_.size() && offset_ == slices_[slice_].size()) {
    ++slice_;
    offset_ = 0;
  }
  if (remaining_ == 0 || slice_ >= slices_.size()) return false;
  *b = slices_[slice_].begin()[offset_++];
  --remaining_;
  return true;
}

bool MessageReader::ReadVarint(uint64_t* v, int max_bytes) {
  uint64_t result = 0;
  for (int shift = 0; shift < 7 * max_bytes && shift < 64; shift += 7) {
    uint8_t b;
    if (!ReadByte(&b)) {
      error_ = true;
      return false;
    }
    result |= uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  error_ = true;
  return false;
}

bool MessageReader::Next(Field* field) {
  if (error_ || remaining_ == 0) return false;
  uint64_t tag;
  if (!ReadVarint(&tag, kMaxTagBytes)) return false;
  field->number = static_cast<uint32_t>(tag >> 3);
  field->type = static_cast<WireType>(tag & 7);
  if (field->number == 0 || (tag >> 3) > kMaxFieldNumber) {  // as protobuf: malformed
    error_ = true;
    return false;
  }
  switch (field->type) {
    case kVarint:
    case kLengthDelimited:
      if (!ReadVarint(&field->value)) return false;
      if (field->type == kLengthDelimited && field->value > remaining_) {
        error_ = true;
        return false;
      }
      return true;
    case kFixed64:
      field->value = 8;
      return remaining_ >= 8 || (error_ = true, false);
    case kFixed32:
      field->value = 4;
      return remaining_ >= 4 || (error_ = true, false);
    default:
      error_ = true;
      return false;
  }
}

bool MessageReader::ReadString(uint64_t length, std::string* out) {
  out->clear();
  out->reserve(length);
  return ReadBytes(length, [out](const char* p, size_t n) { out->append(p, n); });
}

bool MessageReader::Skip(const Field& field) {
  if (field.type == kVarint) return true;
  return ReadBytes(field.value, [](const char*, size_t) {});
}

}  // namespace npystream::wire
