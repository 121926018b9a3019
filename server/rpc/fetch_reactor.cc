#include "server/rpc/fetch_reactor.h"

#include "server/rpc/grpc_status.h"

namespace npystream::rpc {

FetchReactor::FetchReactor(views::NpySource source, uint32_t chunk_bytes,
                           std::unique_ptr<CallTicket> ticket, RpcMetrics* metrics)
    : framer_(std::move(source), chunk_bytes), ticket_(std::move(ticket)), metrics_(metrics) {
  ticket_->set_handle(framer_.info().handle);
}

void FetchReactor::Start() {
  if (metrics_ != nullptr) metrics_->FetchStarted();
  SendNext();
}

void FetchReactor::SendNext() {
  if (framer_.done()) {
    FinishWith(grpc::Status::OK);
    return;
  }
  framer_.Next(&buffer_, [this](const absl::Status& status, uint64_t bytes) {
    if (!status.ok()) {
      FinishWith(ToGrpcStatus(status));
      return;
    }
    ticket_->AddSent(bytes);
    if (framer_.done()) {
      // The last message and the status in one operation: one completion
      // and one flush fewer, which is most of a small fetch's extra latency
      // over a unary echo.
      code_ = grpc::StatusCode::OK;
      StartWriteAndFinish(&buffer_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
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
  message_ = status.error_message();
  Finish(status);
}

void FetchReactor::OnCancel() {
  // Also reached when the client goes away during the final write, which
  // reports no OnWriteDone.
  cancelled_.store(true);
}

void FetchReactor::OnDone() {
  if (metrics_ != nullptr) metrics_->FetchEnded();
  if (cancelled_.load() && code_ == grpc::StatusCode::OK) {
    code_ = grpc::StatusCode::CANCELLED;
    message_ = "fetch cancelled";
  }
  ticket_->Done(code_, message_);
  delete this;
}

}  // namespace npystream::rpc
