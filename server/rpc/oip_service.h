// OipService: inference.GRPCInferenceService (the Open Inference Protocol,
// KServe v2, with Triton's extensions) on the npystream gRPC port. ModelInfer
// is framed by hand: raw inputs go from the request's slices into the input
// tensors (one copy) and raw outputs leave as slices over tensor memory.
#ifndef NPYSTREAM_SERVER_RPC_OIP_SERVICE_H_
#define NPYSTREAM_SERVER_RPC_OIP_SERVICE_H_

#include "inference/grpc_service.grpc.pb.h"
#include "server/common/thread_pool.h"
#include "server/engine/inference_engine.h"
#include "server/rpc/call_gate.h"
#include "server/store/npy_put.h"

namespace npystream::rpc {

namespace oip_base {
using S = inference::GRPCInferenceService;
using Base = S::WithCallbackMethod_ServerLive<
    S::WithCallbackMethod_ServerReady<S::WithCallbackMethod_ModelReady<
        S::WithCallbackMethod_ServerMetadata<S::WithCallbackMethod_ModelMetadata<
            S::WithRawCallbackMethod_ModelInfer<S::WithCallbackMethod_ModelStreamInfer<
                S::WithCallbackMethod_ModelConfig<S::WithCallbackMethod_ModelStatistics<
                    S::WithCallbackMethod_RepositoryIndex<S::WithCallbackMethod_RepositoryModelLoad<
                        S::WithCallbackMethod_RepositoryModelUnload<S::Service>>>>>>>>>>>>;
}  // namespace oip_base

// Thread-safe. Borrowed pointers must outlive the service. ServerLive and
// ServerReady answer without the token (they are probes); everything else
// goes through the CallGate (token, drain, per-call log and metrics).
class OipService final : public oip_base::Base {
 public:
  OipService(InferenceEngine* engine, TensorStore* store, const PutLimits& limits, CallGate* gate,
             ThreadPool* workers);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

  InferenceEngine* engine() const { return engine_; }
  TensorStore* store() const { return store_; }
  const PutLimits& limits() const { return limits_; }
  CallGate* gate() const { return gate_; }
  ThreadPool* workers() { return workers_; }

 private:
  InferenceEngine* const engine_;
  TensorStore* const store_;
  const PutLimits limits_;
  CallGate* const gate_;
  ThreadPool* const workers_;  // shared with InferenceService
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_OIP_SERVICE_H_
