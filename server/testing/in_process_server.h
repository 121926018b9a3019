// InProcessServer: the real npystream gRPC server on a free loopback port,
// with its own store and CPU transfer engine, for tests of servers and
// clients (as Arrow Flight's tests do).
#ifndef NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_
#define NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/common/clock.h"
#include "server/rpc/rpc_server.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace npystream::testing {

class InProcessServer {
 public:
  struct Options {
    uint64_t budget_bytes = uint64_t{1} << 30;
    Clock* clock = Clock::Real();  // not owned
    rpc::PutLimits put_limits;
    rpc::RpcMetrics* metrics = nullptr;  // not owned
    // Replaces the CPU transfer engine (e.g. a DeviceTransfer over a fake).
    std::unique_ptr<Transfer> transfer;
  };

  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start() { return Start(Options()); }

  // "127.0.0.1:PORT".
  const std::string& target() const { return server_->target(); }
  TensorStore* store() { return store_.get(); }
  // A new insecure channel to the server.
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  InProcessServer() = default;
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<Transfer> transfer_;
  std::unique_ptr<rpc::RpcServer> server_;
};

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_
