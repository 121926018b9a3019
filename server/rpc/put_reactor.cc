#include "server/rpc/put_reactor.h"

#include "absl/strings/str_cat.h"
#include "npystream/v1/tensors.pb.h"
#include "server/common/status_macros.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {

PutReactor::PutReactor(TensorStore* store, Transfer* transfer, const PutLimits& limits,
                       grpc::ByteBuffer* response, std::unique_ptr<CallTicket> ticket)
    : assembly_(store, transfer, limits), response_(response), ticket_(std::move(ticket)) {}

void PutReactor::Start() { StartRead(&request_); }

void PutReactor::OnReadDone(bool ok) {
  if (!ok) {
    EndOfStream();
    return;
  }
  absl::Status s = Consume();
  request_.Clear();
  if (!s.ok()) {
    FinishWith(s);
    return;
  }
  if (assembly_.payload() == nullptr) {
    StartRead(&request_);
    return;
  }
  // Backpressure: the next message is read once this one is taken. Nothing
  // below may touch the reactor: `ready` may run on another thread at once.
  assembly_.payload()->WhenWritable([this](const absl::Status& ready) {
    if (ready.ok()) {
      StartRead(&request_);
    } else {
      FinishWith(ready);
    }
  });
}

void PutReactor::EndOfStream() {
  // The client half-closed (or the call died; then Finish is a no-op).
  if (assembly_.payload() == nullptr) {
    FinishWith(Complete());
    return;
  }
  assembly_.payload()->Flush(
      [this](const absl::Status& flushed) { FinishWith(flushed.ok() ? Complete() : flushed); });
}

absl::Status PutReactor::Consume() {
  ticket_->Touch();
  uint64_t data_bytes = 0;
  absl::Status status = assembly_.Consume(request_, &data_bytes);
  ticket_->AddReceived(data_bytes);
  if (!named_ && assembly_.payload() != nullptr) {
    ticket_->set_handle(assembly_.name());
    named_ = true;
  }
  return status;
}

absl::Status PutReactor::Complete() {
  ASSIGN_OR_RETURN(std::shared_ptr<const StoredTensor> stored, assembly_.Complete());
  ticket_->set_handle(stored->info().handle);
  npystream::v1::TensorInfo info;
  ToProto(stored->info(), &info);
  grpc::Slice slice(info.SerializeAsString());
  *response_ = grpc::ByteBuffer(&slice, 1);
  return absl::OkStatus();
}

void PutReactor::FinishWith(const absl::Status& status) {
  assembly_.Abandon();
  code_ = static_cast<int>(status.code());
  message_ = std::string(status.message());
  Finish(ToGrpcStatus(status));
}

void PutReactor::OnCancel() { cancelled_.store(true); }

void PutReactor::OnDone() {
  // A client that cancels looks like one that half-closed early (the stream
  // ends, the payload is short): log and count it as what it was.
  if (cancelled_.load() && code_ != static_cast<int>(absl::StatusCode::kOk)) {
    code_ = static_cast<int>(absl::StatusCode::kCancelled);
    message_ = "put cancelled by the client";
  }
  ticket_->Done(code_, message_);
  delete this;
}

}  // namespace npystream::rpc
