// RpcServer: the gRPC server that hosts npystream's services, the standard
// health service and reflection.
#ifndef NPYSTREAM_SERVER_RPC_RPC_SERVER_H_
#define NPYSTREAM_SERVER_RPC_RPC_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/thread_pool.h"
#include "server/engine/inference_engine.h"
#include "server/peers/peers.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/put_reactor.h"
#include "server/rpc/rpc_metrics.h"
#include "server/rpc/topology_info.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream::rpc {

class TensorsService;
class InferenceService;
class OipService;
class SocketFetchServer;

class RpcServer {
 public:
  struct Options {
    // host:port (port 0 picks a free port) or unix:///path. Unix sockets are
    // always plaintext (same host); the token is checked on every listener.
    // Beside each unix:///P the plain fetch listens on P.fetch
    // (proto/wire/socket_fetch.h); where it cannot (a path too long for
    // ".fetch"), a warning says so and clients use gRPC.
    std::vector<std::string> listen = {"127.0.0.1:50051"};
    TensorStore* store = nullptr;       // not owned
    InferenceEngine* engine = nullptr;  // not owned; null: no Inference service
    Transfer* transfer = nullptr;       // not owned
    // Views of resident tensors; not owned. Null: views of `store` through
    // `transfer`, unmetered.
    const views::Views* views = nullptr;
    RpcMetrics* metrics = nullptr;  // not owned; may be null
    PutLimits put_limits;
    std::shared_ptr<grpc::ServerCredentials> credentials;  // null: insecure
    std::string token;                                     // bearer token required when set
    absl::Duration idle_timeout = absl::ZeroDuration();    // Put/Fetch stalls; see CancelIdle
    int max_concurrent_streams = 0;                        // per connection; 0: gRPC's default
    // Replies gzip-compressed to clients that accept gzip. Requests sent
    // with grpc-encoding: gzip are read either way.
    bool gzip_replies = false;
    TopologyInfo topology;  // what Topology answers
    // Relays calls on other replicas' handles; not owned; null: none are.
    peers::Peers* peers = nullptr;
  };

  // Binds and starts serving. UNAVAILABLE naming the address when it cannot
  // bind; INVALID_ARGUMENT for missing store/transfer.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Start(const Options& options);
  ~RpcServer();

  // The first TCP listener's port (0 when there is none).
  int port() const { return port_; }
  // What a client on this machine dials: the first TCP listener's
  // "host:port", or the first unix:// address when there is no TCP one.
  const std::string& target() const { return target_; }
  // Every listener, as dialable targets (ports resolved).
  const std::vector<std::string>& targets() const { return targets_; }
  // Health goes NOT_SERVING and new calls get UNAVAILABLE; calls in flight
  // continue. Then WaitIdle, then Shutdown.
  void StartDrain();
  bool WaitIdle(absl::Duration timeout) { return gate_->WaitIdle(timeout); }
  int64_t in_flight() { return gate_->in_flight(); }
  int64_t admitted() const { return gate_->admitted(); }
  // Cancels Put/Fetch streams idle for longer than Options::idle_timeout;
  // returns how many. The owner calls it periodically. Thread-safe.
  int CancelIdle() { return gate_->CancelIdle(); }
  // Stops accepting calls; waits up to `deadline` for in-flight ones, then
  // cancels them. Idempotent.
  void Shutdown(absl::Duration deadline);

 private:
  RpcServer() = default;
  std::unique_ptr<CallGate> gate_;
  std::unique_ptr<views::Views> own_views_;  // when Options::views is null
  std::unique_ptr<TensorsService> tensors_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<OipService> oip_;  // the Open Inference Protocol, beside inference_
  // Calls that block on a model, for both services. Declared after them so
  // it drains (running what is queued) while they still exist.
  std::unique_ptr<ThreadPool> infer_workers_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<SocketFetchServer>> plain_fetch_;  // one per unix:// listener
  int port_ = 0;
  std::string target_;
  std::vector<std::string> targets_;
  bool shut_down_ = false;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_RPC_SERVER_H_
