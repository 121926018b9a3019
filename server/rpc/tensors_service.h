// TensorsService: npystream.v1.Tensors on gRPC's callback API. Thin: the
// work is in the store, the transfer engine and the two stream reactors.
#ifndef NPYSTREAM_SERVER_RPC_TENSORS_SERVICE_H_
#define NPYSTREAM_SERVER_RPC_TENSORS_SERVICE_H_

#include "npystream/v1/tensors.grpc.pb.h"
#include "server/peers/peers.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/put_reactor.h"
#include "server/rpc/topology_info.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream::rpc {

namespace v1 = npystream::v1;
using TensorsBase = v1::Tensors::WithRawCallbackMethod_Put<
    v1::Tensors::WithRawCallbackMethod_Fetch<v1::Tensors::WithCallbackMethod_Stat<
        v1::Tensors::WithCallbackMethod_List<v1::Tensors::WithCallbackMethod_Release<
            v1::Tensors::WithCallbackMethod_Map<v1::Tensors::WithCallbackMethod_Allocate<
                v1::Tensors::WithCallbackMethod_Commit<v1::Tensors::WithCallbackMethod_Shm<
                    v1::Tensors::WithCallbackMethod_Topology<v1::Tensors::Service>>>>>>>>>>;

// Thread-safe. Borrowed pointers must outlive the service. With `peers`,
// Fetch, Stat and Release of another replica's handle are relayed to its
// owner, and Map of one is FAILED_PRECONDITION.
class TensorsService final : public TensorsBase {
 public:
  TensorsService(TensorStore* store, Transfer* transfer, const views::Views* views,
                 const PutLimits& limits, CallGate* gate, TopologyInfo topology = {},
                 peers::Peers* peers = nullptr);

  grpc::ServerReadReactor<grpc::ByteBuffer>* Put(grpc::CallbackServerContext* context,
                                                 grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Fetch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* context,
                                 const npystream::v1::TensorRef* request,
                                 npystream::v1::TensorInfo* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const npystream::v1::ListRequest* request,
                                 npystream::v1::ListResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const npystream::v1::TensorRef* request,
                                    npystream::v1::ReleaseResponse* response) override;
  // Same host (--shm-dir). Map of a tensor stored elsewhere blocks its
  // callback thread while the copy is made (once per tensor).
  grpc::ServerUnaryReactor* Map(grpc::CallbackServerContext* context,
                                const npystream::v1::MapRequest* request,
                                npystream::v1::MapResponse* response) override;
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* context,
                                     const npystream::v1::AllocateRequest* request,
                                     npystream::v1::MapResponse* response) override;
  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext* context,
                                   const npystream::v1::TensorRef* request,
                                   npystream::v1::TensorInfo* response) override;
  grpc::ServerUnaryReactor* Shm(grpc::CallbackServerContext* context,
                                const npystream::v1::ShmRequest* request,
                                npystream::v1::ShmResponse* response) override;
  grpc::ServerUnaryReactor* Topology(grpc::CallbackServerContext* context,
                                     const npystream::v1::TopologyRequest* request,
                                     npystream::v1::TopologyResponse* response) override;

 private:
  // The replica that owns `handle` when calls on it are relayed ("": here).
  std::string RelayTarget(const std::string& handle) const;
  // Relays a unary call (Stat, Release) for `owner`'s handle and answers it.
  grpc::ServerUnaryReactor* RelayUnary(grpc::CallbackServerContext* context,
                                       std::unique_ptr<CallTicket> ticket, absl::string_view method,
                                       const std::string& owner,
                                       const google::protobuf::Message& request,
                                       google::protobuf::Message* response);

  TensorStore* const store_;
  Transfer* const transfer_;
  const views::Views* const views_;
  const PutLimits limits_;
  CallGate* const gate_;
  const TopologyInfo topology_;
  peers::Peers* const peers_;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_TENSORS_SERVICE_H_
