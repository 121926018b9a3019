#include "server/rpc/tensors_service.h"

#include "absl/strings/str_cat.h"
#include "server/rpc/fetch_reactor.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/tensor_info_proto.h"
#include "server/rpc/unary_done.h"

namespace npystream::rpc {

TensorsService::TensorsService(TensorStore* store, Transfer* transfer, const PutLimits& limits,
                               CallGate* gate)
    : store_(store), transfer_(transfer), limits_(limits), gate_(gate) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* TensorsService::Put(grpc::CallbackServerContext* context,
                                                               grpc::ByteBuffer* response) {
  auto ticket = gate_->Admit(context, "Put", /*idle_checked=*/true);
  if (!ticket.ok()) return new ErrorReadReactor(ticket.status());
  auto* reactor = new PutReactor(store_, transfer_, limits_, response, std::move(*ticket));
  reactor->Start();
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TensorsService::Fetch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  auto ticket = gate_->Admit(context, "Fetch", /*idle_checked=*/true);
  if (!ticket.ok()) return new ErrorWriteReactor(ticket.status(), nullptr);
  grpc::Slice flat;
  npystream::v1::FetchRequest req;
  if (!request->DumpToSingleSlice(&flat).ok() ||
      !req.ParseFromArray(flat.begin(), static_cast<int>(flat.size()))) {
    return new ErrorWriteReactor(absl::InvalidArgumentError("FetchRequest is malformed"),
                                 std::move(*ticket));
  }
  (*ticket)->set_handle(req.handle());
  auto tensor = store_->Acquire(req.handle());
  if (!tensor.ok()) return new ErrorWriteReactor(tensor.status(), std::move(*ticket));
  auto reader = transfer_->OpenReader(*tensor);
  if (!reader.ok()) return new ErrorWriteReactor(reader.status(), std::move(*ticket));
  auto* reactor = new FetchReactor(std::move(*tensor), std::move(*reader), req.chunk_bytes(),
                                   std::move(*ticket), gate_->metrics());
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* TensorsService::Stat(grpc::CallbackServerContext* context,
                                               const npystream::v1::TensorRef* request,
                                               npystream::v1::TensorInfo* response) {
  auto ticket = gate_->Admit(context, "Stat");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->handle());
  auto tensor = store_->Acquire(request->handle());
  if (tensor.ok()) ToProto((*tensor)->info(), response);
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), tensor.status());
}

grpc::ServerUnaryReactor* TensorsService::List(grpc::CallbackServerContext* context,
                                               const npystream::v1::ListRequest* /*request*/,
                                               npystream::v1::ListResponse* response) {
  auto ticket = gate_->Admit(context, "List");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  for (const TensorInfo& info : store_->List()) ToProto(info, response->add_tensors());
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* TensorsService::Release(grpc::CallbackServerContext* context,
                                                  const npystream::v1::TensorRef* request,
                                                  npystream::v1::ReleaseResponse* response) {
  auto ticket = gate_->Admit(context, "Release");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->handle());
  absl::Status status = store_->Release(request->handle());
  response->set_released(status.ok());
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), status);
}

}  // namespace npystream::rpc
