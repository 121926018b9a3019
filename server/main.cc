// npystreamd: serves resident tensors as .npy streams over gRPC.
// Flags, wiring and signals; the work is in the libraries.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/common/byte_size.h"
#include "server/common/log.h"
#include "server/daemon_config.h"
#include "server/engine/inference_engine.h"
#include "server/rpc/rpc_server.h"
#include "server/store/tensor_store.h"
#include "server/transfer/cuda_probe.h"
#include "server/transfer/transfer.h"

namespace npystream {
namespace {

int Run(const DaemonConfig& config) {
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(config.log_level, &level);
  SetLogLevel(level);
  SetLogJson(config.log_format == "json");

  // Block the signals we handle before any thread starts, then wait for them
  // on this thread with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const CudaProbe cuda = ProbeCuda();
  const int torch_cuda = TensorStore::TorchCudaDeviceCount();
  const int usable_cuda = config.device == "cpu" ? 0 : std::min(cuda.device_count, torch_cuda);
  Log(LogLevel::kInfo, "devices",
      absl::StrCat("cuda_runtime=", cuda.device_count, " torch_cuda=", torch_cuda,
                   " using=", usable_cuda > 0 ? "cuda" : "cpu", " detail=\"",
                   cuda.description, "\""));

  TensorStore::Options store_options;
  store_options.budget_bytes = config.store_budget;
  store_options.cuda_device_count = usable_cuda;
  if (config.device != "auto") store_options.default_device = config.device;
  auto store = TensorStore::Create(store_options);
  if (!store.ok()) {
    Log(LogLevel::kError, "store_failed", store.status().ToString());
    return 1;
  }
  std::unique_ptr<Transfer> transfer = NewCpuTransfer();

  InferenceEngine::Options engine_options;
  engine_options.model_repository = config.model_repository;
  engine_options.store = store->get();
  engine_options.cuda_device_count = usable_cuda;
  engine_options.default_device =
      config.device != "auto" ? config.device : (usable_cuda > 0 ? "cuda:0" : "cpu");
  auto engine = InferenceEngine::Create(engine_options);
  if (!engine.ok()) {
    Log(LogLevel::kError, "engine_failed", engine.status().ToString());
    return 1;
  }

  rpc::RpcServer::Options rpc_options;
  rpc_options.listen = config.listen;
  rpc_options.store = store->get();
  rpc_options.engine = engine->get();
  rpc_options.transfer = transfer.get();
  rpc_options.put_limits.parse.max_header_bytes = config.max_header_bytes;
  rpc_options.put_limits.parse.max_ndim = config.max_ndim;
  if (config.max_put_bytes > 0) rpc_options.put_limits.max_tensor_bytes = config.max_put_bytes;
  rpc_options.max_concurrent_streams = config.max_concurrent_streams;
  auto server = rpc::RpcServer::Start(rpc_options);
  if (!server.ok()) {
    Log(LogLevel::kError, "listen_failed", server.status().ToString());
    return 1;
  }
  Log(LogLevel::kInfo, "listening",
      absl::StrCat("grpc=", (*server)->target(), " budget=", config.store_budget,
                   " device=", config.device));

  std::atomic<bool> stop{false};
  std::thread sweeper([&] {
    while (!stop.load()) {
      const int n = (*store)->SweepExpired();
      if (n > 0) Log(LogLevel::kDebug, "expired", absl::StrCat("tensors=", n));
      for (int i = 0; i < 10 && !stop.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      const ModelListing listing = (*engine)->Reload();
      Log(LogLevel::kInfo, "reloaded",
          absl::StrCat("models=", listing.models.size(), " errors=", listing.errors.size()));
      continue;
    }
    break;
  }
  Log(LogLevel::kInfo, "draining",
      absl::StrCat("timeout_s=", config.drain_timeout_seconds));
  // A second signal while draining exits at once.
  std::thread second([&signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    Log(LogLevel::kWarning, "exit_now", absl::StrCat("signal=", sig));
    std::_Exit(1);
  });
  second.detach();
  (*server)->Shutdown(absl::Seconds(config.drain_timeout_seconds));
  stop = true;
  sweeper.join();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace
}  // namespace npystream

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << npystream::DaemonUsage();
      return 0;
    }
  }
  auto config = npystream::ParseDaemonConfig(args, [](const char* k) { return std::getenv(k); });
  if (!config.ok()) {
    std::cerr << "npystreamd: " << config.status().message() << "\n";
    return 2;
  }
  return npystream::Run(*config);
}
