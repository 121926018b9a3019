// InProcessServer: the real daemon (server/daemon.h) on a free loopback
// port, with its own store, transfer engine and inference engine, for tests
// of servers and clients (as Arrow Flight's tests do).
#ifndef NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_
#define NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/common/clock.h"
#include "server/daemon.h"

namespace npystream::testing {

class InProcessServer {
 public:
  struct Options {
    uint64_t budget_bytes = uint64_t{1} << 30;
    Clock* clock = Clock::Real();  // not owned
    std::string model_repository;  // empty: no models
    bool admin_port = false;       // also serve the admin HTTP port (port 0)
    // Replaces the CPU transfer engine (e.g. a DeviceTransfer over a fake).
    std::unique_ptr<Transfer> transfer;
    // Anything else the daemon's flags set; http_listen/device, store_budget
    // and model_repository are overridden from the fields above, and listen
    // is 127.0.0.1:0 plus any unix:// addresses given here.
    DaemonConfig config;
  };

  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start() { return Start(Options()); }

  // "127.0.0.1:PORT".
  const std::string& target() const { return daemon_->grpc_target(); }
  int http_port() const { return daemon_->http_port(); }
  TensorStore* store() { return daemon_->store(); }
  InferenceEngine* engine() { return daemon_->engine(); }
  Daemon* daemon() { return daemon_.get(); }
  // A new insecure channel to the server, with the clients' settings.
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  InProcessServer() = default;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_IN_PROCESS_SERVER_H_
