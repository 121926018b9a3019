#include "server/rpc/tensors_service.h"

#include "absl/strings/str_cat.h"
#include "server/rpc/fetch_reactor.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {
namespace {

// Answers a streaming call with an error right away.
class ErrorWriteReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ErrorWriteReactor(const absl::Status& status, RpcMetrics* metrics, absl::Time start)
      : code_(static_cast<int>(status.code())), metrics_(metrics), start_(start) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override {
    if (metrics_ != nullptr) {
      metrics_->CallDone("Fetch", code_, absl::ToDoubleSeconds(absl::Now() - start_));
    }
    delete this;
  }

 private:
  const int code_;
  RpcMetrics* const metrics_;
  const absl::Time start_;
};

}  // namespace

TensorsService::TensorsService(TensorStore* store, Transfer* transfer,
                               const PutLimits& limits, RpcMetrics* metrics)
    : store_(store), transfer_(transfer), limits_(limits), metrics_(metrics) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* TensorsService::Put(
    grpc::CallbackServerContext* /*context*/, grpc::ByteBuffer* response) {
  auto* reactor = new PutReactor(store_, limits_, response, metrics_);
  reactor->Start();
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TensorsService::Fetch(
    grpc::CallbackServerContext* /*context*/, const grpc::ByteBuffer* request) {
  const absl::Time start = absl::Now();
  grpc::Slice flat;
  npystream::v1::FetchRequest req;
  if (!request->DumpToSingleSlice(&flat).ok() ||
      !req.ParseFromArray(flat.begin(), static_cast<int>(flat.size()))) {
    return new ErrorWriteReactor(absl::InvalidArgumentError("FetchRequest is malformed"),
                                 metrics_, start);
  }
  auto tensor = store_->Acquire(req.handle());
  if (!tensor.ok()) return new ErrorWriteReactor(tensor.status(), metrics_, start);
  auto reader = transfer_->OpenReader(*tensor);
  if (!reader.ok()) return new ErrorWriteReactor(reader.status(), metrics_, start);
  auto* reactor = new FetchReactor(std::move(*tensor), std::move(*reader),
                                   req.chunk_bytes(), metrics_);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* TensorsService::Stat(grpc::CallbackServerContext* context,
                                               const npystream::v1::TensorRef* request,
                                               npystream::v1::TensorInfo* response) {
  const absl::Time start = absl::Now();
  auto tensor = store_->Acquire(request->handle());
  if (tensor.ok()) ToProto((*tensor)->info(), response);
  return Done(context, "Stat", start, tensor.status());
}

grpc::ServerUnaryReactor* TensorsService::List(grpc::CallbackServerContext* context,
                                               const npystream::v1::ListRequest* /*request*/,
                                               npystream::v1::ListResponse* response) {
  const absl::Time start = absl::Now();
  for (const TensorInfo& info : store_->List()) ToProto(info, response->add_tensors());
  return Done(context, "List", start, absl::OkStatus());
}

grpc::ServerUnaryReactor* TensorsService::Release(grpc::CallbackServerContext* context,
                                                  const npystream::v1::TensorRef* request,
                                                  npystream::v1::ReleaseResponse* response) {
  const absl::Time start = absl::Now();
  absl::Status status = store_->Release(request->handle());
  response->set_released(status.ok());
  return Done(context, "Release", start, status);
}

grpc::ServerUnaryReactor* TensorsService::Done(grpc::CallbackServerContext* context,
                                               absl::string_view method, absl::Time start,
                                               const absl::Status& status) {
  if (metrics_ != nullptr) {
    metrics_->CallDone(method, static_cast<int>(status.code()),
                       absl::ToDoubleSeconds(absl::Now() - start));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace npystream::rpc
