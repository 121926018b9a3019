#include "server/rpc/tensors_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/common/status_macros.h"
#include "server/peers/fetch_relay.h"
#include "server/peers/unary_relay.h"
#include "server/rpc/fetch_reactor.h"
#include "server/rpc/grpc_status.h"
#include "server/rpc/tensor_info_proto.h"
#include "server/rpc/unary_done.h"
#include "server/transfer/shm_file_writer.h"

namespace npystream::rpc {
namespace {

// Copies the tensor's payload into `file`, written with pwrite (see
// NewShmFileWriter), from the host chunks the transfer engine reads.
absl::Status CopyPayload(Transfer* transfer, const std::shared_ptr<const StoredTensor>& tensor,
                         const std::shared_ptr<ShmFile>& file) {
  const uint64_t n = tensor->info().nbytes;
  ASSIGN_OR_RETURN(std::unique_ptr<PayloadReader> reader, transfer->OpenReader(tensor));
  ASSIGN_OR_RETURN(std::unique_ptr<PayloadWriter> writer, NewShmFileWriter(file, n));
  for (uint64_t offset = 0; offset < n;) {
    absl::Notification done;
    absl::StatusOr<HostChunk> chunk;
    reader->Read(offset, n - offset, [&](absl::StatusOr<HostChunk> got) {
      chunk = std::move(got);
      done.Notify();
    });
    done.WaitForNotification();
    RETURN_IF_ERROR(chunk.status());
    offset += chunk->size;
    writer->Write(*std::move(chunk));
  }
  absl::Status written;
  writer->Flush([&](absl::Status s) { written = std::move(s); });
  return written;
}

void ToMapResponse(const TensorInfo& info, const ShmFile& file, npystream::v1::MapResponse* out) {
  ToProto(info, out->mutable_info());
  out->set_path(file.path());
  out->set_npy_bytes(file.size());
  out->set_data_offset(file.data_offset());
}

}  // namespace

TensorsService::TensorsService(TensorStore* store, Transfer* transfer, const views::Views* views,
                               const PutLimits& limits, CallGate* gate, TopologyInfo topology,
                               peers::Peers* peers)
    : store_(store),
      transfer_(transfer),
      views_(views),
      limits_(limits),
      gate_(gate),
      topology_(std::move(topology)),
      peers_(peers) {}

std::string TensorsService::RelayTarget(const std::string& handle) const {
  return peers_ == nullptr ? "" : peers_->OwnerElsewhere(handle);
}

grpc::ServerUnaryReactor* TensorsService::RelayUnary(grpc::CallbackServerContext* context,
                                                     std::unique_ptr<CallTicket> ticket,
                                                     absl::string_view method,
                                                     const std::string& owner,
                                                     const google::protobuf::Message& request,
                                                     google::protobuf::Message* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ticket->set_relayed_to(owner);
  auto call = peers_->Open(*context, method, owner);
  if (!call.ok()) return FinishUnary(reactor, std::move(ticket), call.status());
  peers::RelayUnary(peers_, *std::move(call), method, request, response,
                    [reactor, ticket = std::shared_ptr<CallTicket>(std::move(ticket))](
                        const grpc::Status& status) {
                      ticket->Done(status.error_code(), status.error_message());
                      reactor->Finish(status);
                    });
  return reactor;
}

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
  if (const std::string owner = RelayTarget(req.handle()); !owner.empty()) {
    (*ticket)->set_relayed_to(owner);
    auto call = peers_->Open(*context, "Fetch", owner);
    if (!call.ok()) return new ErrorWriteReactor(call.status(), std::move(*ticket));
    std::shared_ptr<CallTicket> shared = std::move(*ticket);
    auto* relay = new peers::FetchRelay(
        peers_, *std::move(call), *request, [shared](uint64_t n) { shared->AddSent(n); },
        [shared](const grpc::Status& status, uint64_t /*bytes*/) {
          shared->Done(status.error_code(), status.error_message());
        });
    relay->Start();
    return relay;
  }
  auto tensor = store_->Acquire(req.handle());
  if (!tensor.ok()) return new ErrorWriteReactor(tensor.status(), std::move(*ticket));
  auto source = views_->Open(*std::move(tensor), FromProto(req.view()));
  if (!source.ok()) return new ErrorWriteReactor(source.status(), std::move(*ticket));
  auto* reactor =
      new FetchReactor(*std::move(source), req.chunk_bytes(), std::move(*ticket), gate_->metrics());
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* TensorsService::Stat(grpc::CallbackServerContext* context,
                                               const npystream::v1::TensorRef* request,
                                               npystream::v1::TensorInfo* response) {
  auto ticket = gate_->Admit(context, "Stat");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->handle());
  if (const std::string owner = RelayTarget(request->handle()); !owner.empty()) {
    return RelayUnary(context, std::move(*ticket), "Stat", owner, *request, response);
  }
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
  if (const std::string owner = RelayTarget(request->handle()); !owner.empty()) {
    return RelayUnary(context, std::move(*ticket), "Release", owner, *request, response);
  }
  absl::Status status = store_->Release(request->handle());
  response->set_released(status.ok());
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), status);
}

grpc::ServerUnaryReactor* TensorsService::Map(grpc::CallbackServerContext* context,
                                              const npystream::v1::MapRequest* request,
                                              npystream::v1::MapResponse* response) {
  auto ticket = gate_->Admit(context, "Map");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->handle());
  if (const std::string owner = RelayTarget(request->handle()); !owner.empty()) {
    return FinishUnary(
        context->DefaultReactor(), std::move(*ticket),
        absl::FailedPreconditionError(
            absl::StrCat("handle '", request->handle(), "' belongs to replica '", owner, "' (",
                         peers_->AddressOf(owner), "); this is replica '", peers_->replica(),
                         "': mapping needs the owner's host, so Map it on replica '", owner, "'")));
  }
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<const StoredTensor> tensor,
                     store_->Acquire(request->handle()));
    ASSIGN_OR_RETURN(std::shared_ptr<ShmFile> file,
                     store_->MapShm(tensor, [&](const std::shared_ptr<ShmFile>& copy) {
                       return CopyPayload(transfer_, tensor, copy);
                     }));
    ToMapResponse(tensor->info(), *file, response);
    return absl::OkStatus();
  }();
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), status);
}

grpc::ServerUnaryReactor* TensorsService::Allocate(grpc::CallbackServerContext* context,
                                                   const npystream::v1::AllocateRequest* request,
                                                   npystream::v1::MapResponse* response) {
  auto ticket = gate_->Admit(context, "Allocate");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->header().name());
  TensorStore::PutSpec spec = FromProto(request->header());
  const std::vector<int64_t> shape(request->shape().begin(), request->shape().end());
  auto allocation = AllocateShm(store_, request->dtype(), shape, limits_, &spec);
  if (allocation.ok()) {
    (*ticket)->set_handle(allocation->info.handle);
    ToMapResponse(allocation->info, *allocation->file, response);
  }
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), allocation.status());
}

grpc::ServerUnaryReactor* TensorsService::Commit(grpc::CallbackServerContext* context,
                                                 const npystream::v1::TensorRef* request,
                                                 npystream::v1::TensorInfo* response) {
  auto ticket = gate_->Admit(context, "Commit");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  (*ticket)->set_handle(request->handle());
  auto tensor = store_->CommitAllocation(request->handle());
  if (tensor.ok()) ToProto((*tensor)->info(), response);
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), tensor.status());
}

grpc::ServerUnaryReactor* TensorsService::Shm(grpc::CallbackServerContext* context,
                                              const npystream::v1::ShmRequest* /*request*/,
                                              npystream::v1::ShmResponse* response) {
  auto ticket = gate_->Admit(context, "Shm");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  // A question, not a request: no folder is an empty answer, not an error.
  if (const ShmDir* shm = store_->shm()) {
    response->set_dir(shm->path());
    response->set_marker_path(shm->marker_path());
    response->set_marker_device(shm->marker_device());
    response->set_marker_inode(shm->marker_inode());
  }
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* TensorsService::Topology(
    grpc::CallbackServerContext* context, const npystream::v1::TopologyRequest* /*request*/,
    npystream::v1::TopologyResponse* response) {
  auto ticket = gate_->Admit(context, "Topology");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  response->set_replica(topology_.replica);
  response->set_peer_address(topology_.peer_address);
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

}  // namespace npystream::rpc
