#include "server/rpc/npy_framer.h"

#include <algorithm>
#include <string>

#include "npystream/v1/tensors.pb.h"
#include "proto/wire/wire_format.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {
namespace {

// Frees the pin a payload slice holds once gRPC is done with the bytes.
void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const void>*>(owner); }

// FetchResponse field numbers.
constexpr uint32_t kInfoField = v1::FetchResponse::kInfoFieldNumber;
constexpr uint32_t kDataField = v1::FetchResponse::kDataFieldNumber;

}  // namespace

uint32_t EffectiveChunkBytes(uint32_t requested) {
  if (requested == 0) return kDefaultChunkBytes;
  return std::clamp(requested, kMinChunkBytes, kMaxChunkBytes);
}

NpyFramer::NpyFramer(views::NpySource source, uint32_t chunk_bytes)
    : source_(std::move(source)), chunk_bytes_(EffectiveChunkBytes(chunk_bytes)) {}

bool NpyFramer::done() const { return !first_ && sent_ >= source_.info.npy_bytes; }

void NpyFramer::Next(grpc::ByteBuffer* out, std::function<void(absl::Status, uint64_t)> ready) {
  const std::string& header = source_.npy_header;
  const uint64_t hsize = header.size();
  const uint64_t begin = sent_;
  const uint64_t end = std::min<uint64_t>(source_.info.npy_bytes, sent_ + chunk_bytes_);
  const bool first = first_;
  first_ = false;
  // Everything but the payload goes in one small copied slice: the info
  // (first message only), the data field's tag and length, header bytes.
  auto emit = [this, out, ready = std::move(ready), begin, end, first,
               hsize](absl::StatusOr<HostChunk> chunk) mutable {
    if (!chunk.ok()) {
      ready(chunk.status(), 0);
      return;
    }
    const uint64_t header_part = begin < hsize ? std::min(end, hsize) - begin : 0;
    const uint64_t n = header_part + chunk->size;
    std::string prefix;
    if (first) {
      npystream::v1::TensorInfo info;
      ToProto(source_.info, &info);
      const std::string info_bytes = info.SerializeAsString();
      wire::AppendLengthDelimitedPrefix(&prefix, kInfoField, info_bytes.size());
      prefix += info_bytes;
    }
    wire::AppendLengthDelimitedPrefix(&prefix, kDataField, n);
    if (header_part > 0) prefix.append(source_.npy_header, begin, header_part);
    grpc::Slice slices[2] = {grpc::Slice(prefix), grpc::Slice()};
    size_t count = 1;
    if (chunk->size > 0) {
      auto* owner = new std::shared_ptr<const void>(std::move(chunk->owner));
      slices[count++] =
          grpc::Slice(const_cast<char*>(chunk->data), chunk->size, &ReleaseOwner, owner);
    }
    *out = grpc::ByteBuffer(slices, count);
    sent_ = begin + n;
    ready(absl::OkStatus(), n);
  };
  const uint64_t payload_begin = std::max(begin, hsize) - hsize;
  const uint64_t payload_end = end > hsize ? end - hsize : 0;
  if (payload_end > payload_begin) {
    source_.reader->Read(payload_begin, payload_end - payload_begin, std::move(emit));
  } else {
    emit(HostChunk{});
  }
}

}  // namespace npystream::rpc
