// InferenceService: npystream.v1.Inference on gRPC's callback API. Infer
// runs on a worker pool so gRPC's callback threads never block on a model.
#ifndef NPYSTREAM_SERVER_RPC_INFERENCE_SERVICE_H_
#define NPYSTREAM_SERVER_RPC_INFERENCE_SERVICE_H_

#include "npystream/v1/inference.grpc.pb.h"
#include "server/common/thread_pool.h"
#include "server/engine/inference_engine.h"
#include "server/peers/peers.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/put_reactor.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream::rpc {

using InferenceBase = npystream::v1::Inference::WithCallbackMethod_ListModels<
    npystream::v1::Inference::WithCallbackMethod_Infer<
        npystream::v1::Inference::WithRawCallbackMethod_Subscribe<
            npystream::v1::Inference::WithCallbackMethod_Reload<
                npystream::v1::Inference::Service>>>>;

// Thread-safe. Borrowed pointers must outlive the service; `workers` runs
// the calls that block on a model. With `peers`, an Infer input another
// replica made is read from its owner (remote_input.h); null: refused.
class InferenceService final : public InferenceBase {
 public:
  InferenceService(InferenceEngine* engine, TensorStore* store, const views::Views* views,
                   const PutLimits& limits, CallGate* gate, ThreadPool* workers,
                   peers::Peers* peers);

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const npystream::v1::ListModelsRequest* request,
                                       npystream::v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const npystream::v1::InferRequest* request,
                                  npystream::v1::InferResponse* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* context,
                                   const npystream::v1::ReloadRequest* request,
                                   npystream::v1::ListModelsResponse* response) override;

 private:
  absl::Status RunInfer(const npystream::v1::InferRequest& request,
                        npystream::v1::InferResponse* response, CallTicket* ticket,
                        grpc::CallbackServerContext* context);

  InferenceEngine* const engine_;
  TensorStore* const store_;
  const views::Views* const views_;  // Subscribe's values
  const PutLimits limits_;
  CallGate* const gate_;
  ThreadPool* const workers_;  // shared with OipService
  peers::Peers* const peers_;  // may be null
};

// Fills a ListModelsResponse.
void ToProto(const ModelListing& listing, npystream::v1::ListModelsResponse* out);

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_INFERENCE_SERVICE_H_
