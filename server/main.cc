// npystreamd: serves resident tensors as .npy streams over gRPC.
// Flags, wiring and signals; the work is in the libraries.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/process_tuning.h"
#include "server/daemon_config.h"
#include "server/engine/inference_engine.h"
#include "server/http/admin_server.h"
#include "server/http/metrics.h"
#include "server/rpc/rpc_server.h"
#include "server/store/device_name.h"
#include "server/store/tensor_store.h"
#include "server/transfer/copy_device.h"
#include "server/transfer/cuda_probe.h"
#include "server/transfer/device_transfer.h"
#include "server/transfer/transfer.h"

namespace npystream {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

int Fail(absl::string_view event, const absl::Status& status) {
  Log(LogLevel::kError, event, absl::StrCat("error=\"", status.message(), "\""));
  return 1;
}

int Run(const DaemonConfig& config, const std::string& tuning) {
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

  std::string token;
  if (!config.auth_token_file.empty()) {
    if (!ReadFile(config.auth_token_file, &token)) {
      return Fail("config_failed", absl::InvalidArgumentError(
                                       absl::StrCat("cannot read --auth-token-file ", config.auth_token_file)));
    }
    token = std::string(absl::StripAsciiWhitespace(token.substr(0, token.find('\n'))));
    if (token.empty()) {
      return Fail("config_failed", absl::InvalidArgumentError("--auth-token-file is empty"));
    }
  }
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!config.tls_cert.empty() || !config.tls_key.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadFile(config.tls_cert, &pair.cert_chain) || !ReadFile(config.tls_key, &pair.private_key)) {
      return Fail("config_failed", absl::InvalidArgumentError(
                                       "--tls-cert and --tls-key must both name readable PEM files"));
    }
    ssl.pem_key_cert_pairs.push_back(pair);
    if (!config.tls_client_ca.empty()) {
      if (!ReadFile(config.tls_client_ca, &ssl.pem_root_certs)) {
        return Fail("config_failed", absl::InvalidArgumentError("cannot read --tls-client-ca"));
      }
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }

  const CudaProbe cuda = ProbeCuda();
  const int torch_cuda = TensorStore::TorchCudaDeviceCount();
  const int usable_cuda = config.device == "cpu" ? 0 : std::min(cuda.device_count, torch_cuda);
  Log(LogLevel::kInfo, "devices",
      absl::StrCat(tuning, " cuda_runtime=", cuda.device_count, " torch_cuda=", torch_cuda,
                   " using=", usable_cuda > 0 ? "cuda" : "cpu", " detail=\"",
                   cuda.description, "\""));
  if (config.device != "auto") {
    // An explicit --device must exist: serving on the CPU instead would be a
    // silent surprise, and every Put to the default device would fail.
    auto device = ResolveDevice(config.device, usable_cuda);
    if (!device.ok()) {
      return Fail("config_failed",
                  absl::InvalidArgumentError(absl::StrCat(
                      "--device ", config.device, ": ", device.status().message(), " (",
                      cuda.description, ")")));
    }
  }

  Metrics metrics;
  TensorStore::Options store_options;
  store_options.metrics = &metrics;
  store_options.budget_bytes = config.store_budget;
  store_options.cuda_device_count = usable_cuda;
  if (config.device != "auto") store_options.default_device = config.device;
  auto store = TensorStore::Create(store_options);
  if (!store.ok()) return Fail("store_failed", store.status());
  metrics.SetStore(store->get());
  // GPU tensors stage through a pinned ring per device; host tensors are
  // sent straight from their memory.
  std::vector<std::unique_ptr<CopyDevice>> copy_devices;
  std::unique_ptr<Transfer> transfer;
  if (usable_cuda > 0) {
    DeviceTransfer::Options to;
    to.ring_bytes = config.staging_bytes;
    to.slot_bytes = config.staging_chunk;
    to.metrics = &metrics;
    for (int i = 0; i < usable_cuda; ++i) {
      auto device = NewCudaCopyDevice(i, config.copy_streams);
      if (!device.ok()) return Fail("cuda_failed", device.status());
      to.devices[absl::StrCat("cuda:", i)] = device->get();
      copy_devices.push_back(std::move(*device));
    }
    auto device_transfer = DeviceTransfer::Create(to);
    if (!device_transfer.ok()) return Fail("staging_failed", device_transfer.status());
    DeviceTransfer* dt = device_transfer->get();
    metrics.SetStagingFreeSource([dt] { return dt->free_staging_bytes(); });
    metrics.SetGpuMemorySource(usable_cuda, &CudaMemoryUsed);
    transfer = std::move(*device_transfer);
  } else {
    transfer = NewCpuTransfer();
  }

  InferenceEngine::Options engine_options;
  engine_options.model_repository = config.model_repository;
  engine_options.store = store->get();
  engine_options.cuda_device_count = usable_cuda;
  engine_options.default_device =
      config.device != "auto" ? config.device : (usable_cuda > 0 ? "cuda:0" : "cpu");
  engine_options.metrics = &metrics;
  auto engine = InferenceEngine::Create(engine_options);
  if (!engine.ok()) return Fail("engine_failed", engine.status());

  rpc::RpcServer::Options rpc_options;
  rpc_options.listen = config.listen;
  rpc_options.store = store->get();
  rpc_options.engine = engine->get();
  rpc_options.transfer = transfer.get();
  rpc_options.metrics = &metrics;
  rpc_options.credentials = credentials;
  rpc_options.token = token;
  rpc_options.idle_timeout = absl::Seconds(config.idle_timeout_seconds);
  rpc_options.put_limits.parse.max_header_bytes = config.max_header_bytes;
  rpc_options.put_limits.parse.max_ndim = config.max_ndim;
  if (config.max_put_bytes > 0) rpc_options.put_limits.max_tensor_bytes = config.max_put_bytes;
  rpc_options.max_concurrent_streams = config.max_concurrent_streams;
  auto server = rpc::RpcServer::Start(rpc_options);
  if (!server.ok()) return Fail("listen_failed", server.status());

  std::atomic<bool> draining{false};
  std::unique_ptr<AdminServer> admin;
  std::string http_address = "off";
  if (!config.http_listen.empty()) {
    AdminServer::Options admin_options;
    admin_options.listen = config.http_listen;
    admin_options.metrics = &metrics;
    admin_options.store = store->get();
    admin_options.transfer = transfer.get();
    admin_options.token = token;
    admin_options.tls_cert_file = config.tls_cert;
    admin_options.tls_key_file = config.tls_key;
    admin_options.tls_client_ca_file = config.tls_client_ca;
    admin_options.not_ready_reason = [&draining]() -> std::string {
      return draining.load() ? "draining" : "";
    };
    auto started = AdminServer::Start(admin_options);
    if (!started.ok()) return Fail("http_listen_failed", started.status());
    admin = std::move(*started);
    http_address = absl::StrCat(config.http_listen.substr(0, config.http_listen.rfind(':')), ":",
                                admin->port());
  }
  const ModelListing models = (*engine)->ListModels();
  Log(LogLevel::kInfo, "listening",
      absl::StrCat("grpc=", (*server)->target(), " http=", http_address,
                   " tls=", credentials ? (config.tls_client_ca.empty() ? "on" : "mutual") : "off",
                   " auth=", token.empty() ? "off" : "token", " budget=", config.store_budget,
                   " device=", config.device, " models=", models.models.size(),
                   " model_errors=", models.errors.size()));

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

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    const ModelListing listing = (*engine)->Reload();
    Log(LogLevel::kInfo, "reloaded",
        absl::StrCat("models=", listing.models.size(), " errors=", listing.errors.size()));
  }
  // Drain: not ready at once, new calls refused, calls in flight finish.
  draining = true;
  (*server)->StartDrain();
  Log(LogLevel::kInfo, "draining",
      absl::StrCat("signal=", sig, " in_flight=", (*server)->in_flight(),
                   " timeout_s=", config.drain_timeout_seconds));
  // A second signal while draining exits at once.
  std::thread second([&signals] {
    int again = 0;
    sigwait(&signals, &again);
    Log(LogLevel::kWarning, "exit_now", absl::StrCat("signal=", again));
    std::_Exit(1);
  });
  second.detach();
  const bool idle = (*server)->WaitIdle(absl::Seconds(config.drain_timeout_seconds));
  if (!idle) {
    Log(LogLevel::kWarning, "drain_timeout",
        absl::StrCat("cancelling=", (*server)->in_flight()));
  }
  (*server)->Shutdown(absl::Seconds(1));
  if (admin) admin->Stop();
  stop = true;
  sweeper.join();
  Log(LogLevel::kInfo, "stopped", absl::StrCat("clean=", idle ? "true" : "false"));
  return 0;
}

}  // namespace
}  // namespace npystream

int main(int argc, char** argv) {
  const std::string tuning = npystream::TuneProcessForStreaming();
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
  return npystream::Run(*config, tuning);
}
