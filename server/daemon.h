// Daemon: the composition root. Builds and owns everything npystreamd runs
// (device plan, metrics, store, transfer engine, inference engine, gRPC and
// admin servers, periodic tasks) from a DaemonConfig; main.cc keeps only
// flags, signals and exit codes. Tests run the same object on port 0.
#ifndef NPYSTREAM_SERVER_DAEMON_H_
#define NPYSTREAM_SERVER_DAEMON_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/periodic_runner.h"
#include "server/daemon_config.h"
#include "server/engine/inference_engine.h"
#include "server/http/admin_server.h"
#include "server/metrics/metrics.h"
#include "server/peers/peers.h"
#include "server/rpc/rpc_server.h"
#include "server/store/device_plan.h"
#include "server/store/tensor_store.h"
#include "server/transfer/copy_device.h"
#include "server/transfer/cuda_probe.h"
#include "server/transfer/transfer.h"

namespace npystream {

// What the daemon takes from its host instead of making it itself, so tests
// substitute fakes (leveldb's Env). Every default is the real thing.
struct DaemonEnv {
  Clock* clock = Clock::Real();  // not owned
  // CUDA devices the runtime sees, and those the linked LibTorch can use.
  std::function<CudaProbe()> probe_cuda = &ProbeCuda;
  std::function<int()> torch_cuda_devices = &TensorStore::TorchCudaDeviceCount;
  // The copy engine of CUDA device `index` with `streams` streams.
  std::function<absl::StatusOr<std::unique_ptr<CopyDevice>>(int index, int streams)>
      new_copy_device = &NewCudaCopyDevice;
  // Replaces the transfer engine the device plan calls for (a ring over a
  // fake device, in tests). Taken by Create.
  std::unique_ptr<Transfer> transfer;
  // Not owned; null: the daemon owns its registry.
  Metrics* metrics = nullptr;
  // What main() did to the process (TuneProcessForStreaming), for the log.
  std::string process_tuning;
};

// Create, then Start, then Drain (or destroy). Reload is thread-safe; the
// accessors are valid from Create until destruction.
class Daemon {
 public:
  // Reads the token and PEM files once, resolves the devices, builds the
  // store, transfer engine and inference engine. INVALID_ARGUMENT naming the
  // flag for unreadable files, an absent --device or a bad repository.
  static absl::StatusOr<std::unique_ptr<Daemon>> Create(const DaemonConfig& config,
                                                        DaemonEnv env = DaemonEnv());
  ~Daemon();

  // Binds the gRPC and admin ports and starts the periodic tasks (TTL sweep,
  // idle-stream watchdog). UNAVAILABLE naming the address when one cannot
  // bind.
  absl::Status Start();
  // Not ready at once, new calls refused, calls in flight get until
  // `deadline` to finish and are then cancelled; everything stops. Returns
  // whether the calls finished in time. Idempotent.
  bool Drain(absl::Duration deadline);
  // Re-reads the model repository (SIGHUP).
  ModelListing Reload();

  // "host:port" of the gRPC port, after Start.
  const std::string& grpc_target() const { return rpc_->target(); }
  // The admin port after Start; 0 when it is off.
  int http_port() const { return admin_ ? admin_->port() : 0; }
  const DevicePlan& devices() const { return devices_; }
  TensorStore* store() { return store_.get(); }
  InferenceEngine* engine() { return engine_.get(); }
  Transfer* transfer() { return transfer_.get(); }
  Metrics* metrics() { return metrics_; }

 private:
  Daemon(const DaemonConfig& config, DaemonEnv env);
  absl::Status Build();
  absl::Status ReadSecrets();
  absl::Status PlanDevices();
  absl::Status BuildTransfer();

  const DaemonConfig config_;
  DaemonEnv env_;
  // Secrets, read once and handed to both ports.
  std::string token_;
  std::string tls_cert_pem_, tls_key_pem_, tls_client_ca_pem_;
  std::string cuda_description_;
  std::string replica_id_;  // in server-chosen handles
  DevicePlan devices_;

  std::unique_ptr<Metrics> owned_metrics_;
  Metrics* metrics_ = nullptr;
  std::unique_ptr<TensorStore> store_;
  std::vector<std::unique_ptr<CopyDevice>> copy_devices_;
  std::unique_ptr<Transfer> transfer_;
  std::unique_ptr<views::Views> views_;  // both ports' fetches and subscriptions
  std::unique_ptr<InferenceEngine> engine_;
  std::unique_ptr<peers::Peers> peers_;  // relays calls on other replicas' handles
  std::unique_ptr<rpc::RpcServer> rpc_;
  std::unique_ptr<AdminServer> admin_;
  // Read and written only by the periodic runner's thread.
  int64_t last_admitted_ = -1;
  bool released_since_activity_ = false;
  PeriodicRunner periodic_;
  std::atomic<bool> draining_{false};
  bool stopped_ = false;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_DAEMON_H_
