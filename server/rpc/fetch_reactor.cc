#include "server/rpc/fetch_reactor.h"

#include "server/rpc/grpc_status.h"

namespace npystream::rpc {

FetchReactor::FetchReactor(std::shared_ptr<const StoredTensor> tensor,
                           std::unique_ptr<PayloadReader> reader, uint32_t chunk_bytes,
                           RpcMetrics* metrics)
    : framer_(std::move(tensor), std::move(reader), chunk_bytes), metrics_(metrics) {}

void FetchReactor::Start() {
  if (metrics_ != nullptr) metrics_->FetchStarted();
  SendNext();
}

void FetchReactor::SendNext() {
  if (framer_.done()) {
    FinishWith(grpc::Status::OK);
    return;
  }
  framer_.Next(&buffer_, [this](absl::Status status, uint64_t bytes) {
    if (!status.ok()) {
      FinishWith(ToGrpcStatus(status));
      return;
    }
    if (metrics_ != nullptr) metrics_->BytesSent(bytes);
    StartWrite(&buffer_);
  });
}

void FetchReactor::OnWriteDone(bool ok) {
  buffer_.Clear();
  if (!ok) {
    // The client went away or the call was cancelled: stop; every slice (and
    // so every pin) is released when gRPC drops the buffers.
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
