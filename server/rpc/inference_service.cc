#include "server/rpc/inference_service.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/infer_request.h"
#include "server/rpc/remote_input.h"
#include "server/rpc/subscribe_reactor.h"
#include "server/rpc/tensor_info_proto.h"
#include "server/rpc/unary_done.h"

namespace npystream::rpc {

void ToProto(const ModelListing& listing, npystream::v1::ListModelsResponse* out) {
  for (const ModelSummary& m : listing.models) {
    auto* info = out->add_models();
    info->set_name(m.name);
    info->set_device(m.device);
    for (const InputSpec& in : m.inputs) {
      auto* spec = info->add_inputs();
      spec->set_name(in.name);
      if (in.dtype) spec->set_dtype(npy::Descr(*in.dtype));
      for (int64_t d : in.shape) spec->add_shape(d);
    }
    for (const std::string& o : m.outputs) info->add_outputs(o);
    for (const std::string& l : m.layers) info->add_layers(l);
    info->set_max_batch(m.max_batch);
    info->set_instances(m.instances);
  }
  for (const auto& [name, why] : listing.errors) {
    auto* e = out->add_errors();
    e->set_name(name);
    e->set_message(why);
  }
}

InferenceService::InferenceService(InferenceEngine* engine, TensorStore* store,
                                   const views::Views* views, const PutLimits& limits,
                                   CallGate* gate, ThreadPool* workers, peers::Peers* peers)
    : engine_(engine),
      store_(store),
      views_(views),
      limits_(limits),
      gate_(gate),
      workers_(workers),
      peers_(peers) {}

grpc::ServerUnaryReactor* InferenceService::ListModels(
    grpc::CallbackServerContext* context, const npystream::v1::ListModelsRequest*,
    npystream::v1::ListModelsResponse* response) {
  auto ticket = gate_->Admit(context, "ListModels");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  ToProto(engine_->ListModels(), response);
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Reload(grpc::CallbackServerContext* context,
                                                   const npystream::v1::ReloadRequest*,
                                                   npystream::v1::ListModelsResponse* response) {
  auto ticket = gate_->Admit(context, "Reload");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  auto* reactor = context->DefaultReactor();
  workers_->Schedule([this, reactor, response, t = ticket->release()] {
    ToProto(engine_->Reload(), response);
    FinishUnary(reactor, std::unique_ptr<CallTicket>(t), absl::OkStatus());
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::Infer(grpc::CallbackServerContext* context,
                                                  const npystream::v1::InferRequest* request,
                                                  npystream::v1::InferResponse* response) {
  auto ticket = gate_->Admit(context, "Infer");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->model());
  auto* reactor = context->DefaultReactor();
  workers_->Schedule([this, context, reactor, request, response, t = ticket->release()] {
    std::unique_ptr<CallTicket> ticket(t);
    absl::Status status =
        context->IsCancelled()
            ? absl::DeadlineExceededError("call cancelled or past its deadline before it ran")
            : RunInfer(*request, response, ticket.get(), context);
    FinishUnary(reactor, std::move(ticket), status);
  });
  return reactor;
}

absl::Status InferenceService::RunInfer(const npystream::v1::InferRequest& request,
                                        npystream::v1::InferResponse* response, CallTicket* ticket,
                                        grpc::CallbackServerContext* context) {
  uint64_t received = 0;
  RemoteInput remote;
  if (peers_ != nullptr) {
    remote = [&](const std::string& handle) -> absl::StatusOr<std::shared_ptr<const StoredTensor>> {
      const std::string owner = peers_->OwnerElsewhere(handle);
      if (owner.empty()) return nullptr;
      ticket->set_relayed_to(owner);
      return ReadRemoteInput(peers_, *context, owner, handle, store_, limits_, &received);
    };
  }
  absl::StatusOr<InferCall> decoded =
      DecodeInferRequest(request, store_, limits_, &received, remote);
  ticket->AddReceived(received);
  ASSIGN_OR_RETURN(InferCall call, std::move(decoded));
  // A request queued for a batch leaves it when its client goes or its
  // deadline passes.
  call.cancelled = [context] { return context->IsCancelled(); };
  if (context->deadline() < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    call.deadline = absl::FromChrono(context->deadline());
  }
  ASSIGN_OR_RETURN(InferResult result, engine_->Infer(call));
  uint64_t sent = 0;
  EncodeInferResult(result, response, &sent);
  ticket->AddSent(sent);
  return absl::OkStatus();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  auto ticket = gate_->Admit(context, "Subscribe");
  if (!ticket.ok()) return new ErrorWriteReactor(ticket.status(), nullptr);
  grpc::Slice flat;
  npystream::v1::SubscribeRequest req;
  if (!request->DumpToSingleSlice(&flat).ok() ||
      !req.ParseFromArray(flat.begin(), static_cast<int>(flat.size()))) {
    return new ErrorWriteReactor(absl::InvalidArgumentError("SubscribeRequest is malformed"),
                                 std::move(*ticket));
  }
  std::map<std::string, views::ViewRequest> layer_views;
  for (const auto& [layer, view] : req.views()) {
    if (std::find(req.layers().begin(), req.layers().end(), layer) == req.layers().end()) {
      return new ErrorWriteReactor(
          absl::InvalidArgumentError(absl::StrCat("view for layer '", layer,
                                                  "', which is not among the subscribed layers")),
          std::move(*ticket));
    }
    views::ViewRequest request = FromProto(view);
    if (absl::Status valid = views::CheckViewRequest(request); !valid.ok()) {
      return new ErrorWriteReactor(valid, std::move(*ticket));
    }
    layer_views.emplace(layer, std::move(request));
  }
  auto sub = engine_->Subscribe(req.model(),
                                std::vector<std::string>(req.layers().begin(), req.layers().end()));
  if (!sub.ok()) return new ErrorWriteReactor(sub.status(), std::move(*ticket));
  auto* reactor = new SubscribeReactor(engine_->hub(), std::move(*sub), views_,
                                       std::move(layer_views), std::move(*ticket));
  reactor->Start();
  return reactor;
}

}  // namespace npystream::rpc
