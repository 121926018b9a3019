#include "server/rpc/fetch_reactor.h"

#include <algorithm>

#include "proto/wire/wire_format.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {
namespace {

// Frees the pin a payload slice holds once gRPC is done with the bytes.
void ReleaseOwner(void* owner) {
  delete static_cast<std::shared_ptr<const void>*>(owner);
}

// FetchResponse field numbers.
constexpr uint32_t kInfoField = 1;
constexpr uint32_t kDataField = 2;

}  // namespace

uint32_t EffectiveChunkBytes(uint32_t requested) {
  if (requested == 0) return kDefaultChunkBytes;
  return std::clamp(requested, kMinChunkBytes, kMaxChunkBytes);
}

FetchReactor::FetchReactor(std::shared_ptr<const StoredTensor> tensor,
                           std::unique_ptr<PayloadReader> reader,
                           uint32_t chunk_bytes, RpcMetrics* metrics)
    : tensor_(std::move(tensor)),
      reader_(std::move(reader)),
      chunk_bytes_(EffectiveChunkBytes(chunk_bytes)),
      metrics_(metrics) {}

void FetchReactor::Start() {
  if (metrics_ != nullptr) metrics_->FetchStarted();
  SendNext();
}

void FetchReactor::SendNext() {
  const std::string& header = tensor_->npy_header();
  const uint64_t hsize = header.size();
  const uint64_t total = tensor_->info().npy_bytes;
  if (!first_ && sent_ >= total) {
    FinishWith(grpc::Status::OK);
    return;
  }
  const uint64_t end = std::min<uint64_t>(total, sent_ + chunk_bytes_);
  // Everything but the payload goes in one small copied slice: the info
  // (first message only), the data field's tag and length, header bytes.
  std::string prefix;
  if (first_) {
    npystream::v1::TensorInfo info;
    ToProto(tensor_->info(), &info);
    const std::string info_bytes = info.SerializeAsString();
    wire::AppendLengthDelimitedPrefix(&prefix, kInfoField, info_bytes.size());
    prefix += info_bytes;
  }
  wire::AppendLengthDelimitedPrefix(&prefix, kDataField, end - sent_);
  if (sent_ < hsize) {
    prefix.append(header, sent_, std::min(end, hsize) - sent_);
  }
  const uint64_t payload_begin = std::max(sent_, hsize) - hsize;
  const uint64_t payload_end = end > hsize ? end - hsize : 0;
  if (payload_end > payload_begin) {
    reader_->Read(payload_begin, payload_end - payload_begin,
                  [this, prefix = std::move(prefix), end](absl::StatusOr<HostChunk> chunk) mutable {
                    OnChunk(std::move(chunk), std::move(prefix), end);
                  });
  } else {
    OnChunk(HostChunk{}, std::move(prefix), end);
  }
}

void FetchReactor::OnChunk(absl::StatusOr<HostChunk> chunk, std::string prefix,
                           uint64_t end) {
  if (!chunk.ok()) {
    FinishWith(ToGrpcStatus(chunk.status()));
    return;
  }
  grpc::Slice slices[2] = {grpc::Slice(prefix), grpc::Slice()};
  size_t n = 1;
  if (chunk->size > 0) {
    auto* owner = new std::shared_ptr<const void>(std::move(chunk->owner));
    slices[n++] = grpc::Slice(const_cast<char*>(chunk->data), chunk->size,
                              &ReleaseOwner, owner);
  }
  buffer_ = grpc::ByteBuffer(slices, n);
  if (metrics_ != nullptr) metrics_->BytesSent(end - sent_);
  sent_ = end;
  first_ = false;
  StartWrite(&buffer_);
}

void FetchReactor::OnWriteDone(bool ok) {
  buffer_.Clear();
  if (!ok) {
    // The client went away or the call was cancelled: stop here; every slice
    // (and so every pin) is released when gRPC drops the buffers.
    FinishWith(grpc::Status(grpc::StatusCode::CANCELLED, "fetch cancelled"));
    return;
  }
  SendNext();
}

void FetchReactor::FinishWith(const grpc::Status& status) {
  code_ = status.error_code();
  Finish(status);
}

void FetchReactor::OnDone() {
  if (metrics_ != nullptr) {
    metrics_->FetchEnded();
    metrics_->CallDone("Fetch", code_, absl::ToDoubleSeconds(absl::Now() - start_));
  }
  delete this;
}

}  // namespace npystream::rpc
