#include "server/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/process_tuning.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/store/shm_dir.h"
#include "server/store/tmpfs_huge_pages.h"
#include "server/transfer/device_transfer.h"

namespace npystream {
namespace {

// The file a flag names, or INVALID_ARGUMENT naming the flag.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", bytes.status().message()));
  }
  return bytes;
}

// --replica-id, or the host name (a pod's name in Kubernetes) reduced to the
// characters a handle may carry.
std::string ReplicaId(const std::string& flag) {
  if (!flag.empty()) return flag;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "";
  std::string id;
  for (const char* c = host; *c != '\0' && id.size() < 63; ++c) {
    if (absl::ascii_isalnum(*c) || *c == '-' || *c == '_' || *c == '.') id += *c;
  }
  return id;
}

// What an operator can do about --shm-dir's pages (README "Same host").
absl::string_view ShmDirHint(const ShmDir& shm) {
  if (!shm.on_memory()) return "not a tmpfs: files are written to disk";
  switch (shm.huge_pages()) {
    case TmpfsHugePages::kNever:
    case TmpfsHugePages::kAdvise:
      return "4 KiB pages: a tmpfs mounted with huge=within_size makes same-host puts faster";
    case TmpfsHugePages::kAlways:
      return "huge=always gives every file, however small, a 2 MiB page; huge=within_size does not";
    case TmpfsHugePages::kWithinSize:
      break;
  }
  return "2 MiB pages for files of 2 MiB and more";
}

}  // namespace

Daemon::Daemon(const DaemonConfig& config, DaemonEnv env) : config_(config), env_(std::move(env)) {}

Daemon::~Daemon() { Drain(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(const DaemonConfig& config, DaemonEnv env) {
  std::unique_ptr<Daemon> daemon(new Daemon(config, std::move(env)));
  RETURN_IF_ERROR(daemon->Build());
  return daemon;
}

absl::Status Daemon::ReadSecrets() {
  if (!config_.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(std::string token, ReadFlagFile("auth-token-file", config_.auth_token_file));
    token_ = std::string(absl::StripAsciiWhitespace(token.substr(0, token.find('\n'))));
    if (token_.empty()) return absl::InvalidArgumentError("--auth-token-file is empty");
  }
  if (!config_.tls_cert.empty() || !config_.tls_key.empty()) {
    if (config_.tls_cert.empty() || config_.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key must both name PEM files");
    }
    ASSIGN_OR_RETURN(tls_cert_pem_, ReadFlagFile("tls-cert", config_.tls_cert));
    ASSIGN_OR_RETURN(tls_key_pem_, ReadFlagFile("tls-key", config_.tls_key));
    if (!config_.tls_client_ca.empty()) {
      ASSIGN_OR_RETURN(tls_client_ca_pem_, ReadFlagFile("tls-client-ca", config_.tls_client_ca));
    }
  } else if (!config_.tls_client_ca.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  return absl::OkStatus();
}

absl::Status Daemon::PlanDevices() {
  const CudaProbe cuda = env_.probe_cuda();
  const int torch_cuda = env_.torch_cuda_devices();
  const bool host_only = absl::AsciiStrToLower(config_.device) == "cpu";
  const int usable = host_only ? 0 : std::min(cuda.device_count, torch_cuda);
  cuda_description_ = cuda.description;
  auto plan = DevicePlan::Create(config_.device, usable);
  if (!plan.ok()) {
    // An explicit --device must exist: serving on the CPU instead would be a
    // silent surprise, and every Put to the default device would fail.
    return absl::InvalidArgumentError(
        absl::StrCat(plan.status().message(), " (", cuda.description, ")"));
  }
  devices_ = *std::move(plan);
  Log(LogLevel::kInfo, "devices",
      {{"tuning", env_.process_tuning},
       {"cuda_runtime", cuda.device_count},
       {"torch_cuda", torch_cuda},
       {"using", devices_.uses_cuda() ? "cuda" : "cpu"},
       {"default", devices_.default_device()},
       {"detail", cuda.description}});
  return absl::OkStatus();
}

absl::Status Daemon::BuildTransfer() {
  if (env_.transfer) {
    transfer_ = std::move(env_.transfer);
    return absl::OkStatus();
  }
  if (!devices_.uses_cuda()) {
    // Host tensors are sent straight from their memory.
    transfer_ = NewCpuTransfer();
    return absl::OkStatus();
  }
  // GPU tensors stage through a pinned ring per device.
  DeviceTransfer::Options to;
  to.ring_bytes = config_.staging_bytes;
  to.slot_bytes = config_.staging_chunk;
  to.metrics = metrics_;
  for (int i = 0; i < devices_.cuda_device_count(); ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<CopyDevice> device,
                     env_.new_copy_device(i, config_.copy_streams));
    to.devices[absl::StrCat("cuda:", i)] = device.get();
    copy_devices_.push_back(std::move(device));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceTransfer> ring, DeviceTransfer::Create(to));
  DeviceTransfer* dt = ring.get();
  metrics_->SetStagingFreeSource([dt] { return dt->free_staging_bytes(); });
  metrics_->SetGpuMemorySource(devices_.cuda_device_count(), &CudaMemoryUsed);
  transfer_ = std::move(ring);
  return absl::OkStatus();
}

absl::Status Daemon::Build() {
  RETURN_IF_ERROR(ReadSecrets());
  RETURN_IF_ERROR(PlanDevices());
  metrics_ = env_.metrics;
  if (metrics_ == nullptr) {
    owned_metrics_ = std::make_unique<Metrics>();
    metrics_ = owned_metrics_.get();
  }

  TensorStore::Options store_options;
  if (!config_.shm_dir.empty()) {
    ASSIGN_OR_RETURN(store_options.shm, ShmDir::Create({config_.shm_dir, config_.shm_group}));
    const ShmDir& shm = *store_options.shm;
    Log(shm.on_memory() ? LogLevel::kInfo : LogLevel::kWarning, "shm_dir",
        {{"path", shm.path()},
         {"tmpfs", shm.on_memory()},
         {"huge_pages", TmpfsHugePagesName(shm.huge_pages())},
         {"hint", ShmDirHint(shm)},
         {"stale_removed", shm.stale_removed()},
         {"group", config_.shm_group.empty() ? "(daemon's)" : config_.shm_group}});
  }
  store_options.allocation_timeout_ms = int64_t{config_.idle_timeout_seconds} * 1000;
  replica_id_ = ReplicaId(config_.replica_id);
  store_options.replica_id = replica_id_;
  store_options.clock = env_.clock;
  store_options.metrics = metrics_;
  store_options.budget_bytes = config_.store_budget;
  store_options.devices = devices_;
  HostMemoryPool::Options pool_options;  // freed tensor memory kept for reuse until idle
  pool_options.cache_bytes = std::min<uint64_t>(pool_options.cache_bytes, config_.store_budget);
  store_options.host_memory = HostMemoryPool::Create(pool_options);
  ASSIGN_OR_RETURN(store_, TensorStore::Create(store_options));
  metrics_->SetStore(store_.get());

  RETURN_IF_ERROR(BuildTransfer());

  InferenceEngine::Options engine_options;
  engine_options.model_repository = config_.model_repository;
  engine_options.store = store_.get();
  engine_options.devices = devices_;
  engine_options.metrics = metrics_;
  // Default: half the cores, at least one. Concurrency comes from
  // `instances` and batching; on 2 cores one intra-op thread per forward pass
  // beat two (README, "Inference": scaling).
  engine_options.intra_op_threads =
      config_.torch_threads > 0
          ? config_.torch_threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
  engine_options.inter_op_threads = config_.torch_interop_threads;
  ASSIGN_OR_RETURN(engine_, InferenceEngine::Create(engine_options));
  return absl::OkStatus();
}

absl::Status Daemon::Start() {
  rpc::RpcServer::Options rpc_options;
  rpc_options.listen = config_.listen;
  rpc_options.store = store_.get();
  rpc_options.engine = engine_.get();
  rpc_options.transfer = transfer_.get();
  views_ = std::make_unique<views::Views>(
      views::Views::Options{transfer_.get(), store_.get(), metrics_, false});
  rpc_options.views = views_.get();
  rpc_options.metrics = metrics_;
  if (!tls_cert_pem_.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls_key_pem_, tls_cert_pem_});
    if (!tls_client_ca_pem_.empty()) {
      ssl.pem_root_certs = tls_client_ca_pem_;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    rpc_options.credentials = grpc::SslServerCredentials(ssl);
  }
  rpc_options.token = token_;
  rpc_options.topology = {replica_id_, config_.peer_address};
  if (!config_.peer_address.empty()) {
    peers::Peers::Options peer_options;
    peer_options.replica = replica_id_;
    peer_options.address_template = config_.peer_address;
    peer_options.connect_timeout = absl::Seconds(config_.peer_connect_timeout_seconds);
    peer_options.metrics = metrics_;
    if (!tls_cert_pem_.empty()) {
      // Replicas share one certificate (one Secret): a peer's server
      // certificate is checked against the client CA when there is one, else
      // against that shared certificate; it is also this side's client
      // certificate for mTLS.
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = tls_client_ca_pem_.empty() ? tls_cert_pem_ : tls_client_ca_pem_;
      ssl.pem_private_key = tls_key_pem_;
      ssl.pem_cert_chain = tls_cert_pem_;
      peer_options.credentials = grpc::SslCredentials(ssl);
    }
    ASSIGN_OR_RETURN(peers_, peers::Peers::Create(peer_options));
    rpc_options.peers = peers_.get();
  }
  rpc_options.idle_timeout = absl::Seconds(config_.idle_timeout_seconds);
  PutLimits put_limits;  // gRPC Puts, inline Infer inputs, HTTP infer bodies
  put_limits.parse.max_header_bytes = config_.max_header_bytes;
  put_limits.parse.max_ndim = config_.max_ndim;
  if (config_.max_put_bytes > 0) put_limits.max_tensor_bytes = config_.max_put_bytes;
  rpc_options.put_limits = put_limits;
  rpc_options.max_concurrent_streams = config_.max_concurrent_streams;
  rpc_options.gzip_replies = config_.grpc_gzip_replies;
  ASSIGN_OR_RETURN(rpc_, rpc::RpcServer::Start(rpc_options));

  std::string http_address = "off";
  if (!config_.http_listen.empty()) {
    AdminServer::Options admin_options;
    admin_options.listen = config_.http_listen;
    admin_options.scrape = [metrics = metrics_] { return metrics->Scrape(); };
    admin_options.store = store_.get();
    admin_options.transfer = transfer_.get();
    admin_options.views = views_.get();
    admin_options.engine = engine_.get();
    admin_options.peers = peers_.get();
    admin_options.put_limits = put_limits;
    admin_options.token = token_;
    admin_options.allowed_origins = config_.http_allow_origins;
    admin_options.tls_cert_pem = tls_cert_pem_;
    admin_options.tls_key_pem = tls_key_pem_;
    admin_options.tls_client_ca_pem = tls_client_ca_pem_;
    admin_options.not_ready_reason = [this]() -> std::string {
      return draining_.load() ? "draining" : "";
    };
    ASSIGN_OR_RETURN(admin_, AdminServer::Start(admin_options));
    http_address = absl::StrCat(config_.http_listen.substr(0, config_.http_listen.rfind(':')), ":",
                                admin_->port());
  }

  periodic_.Add("ttl_sweep", absl::Seconds(1), [this] {
    const int n = store_->SweepExpired();
    if (n > 0) Log(LogLevel::kDebug, "expired", {{"tensors", n}});
  });
  if (config_.idle_timeout_seconds > 0) {
    periodic_.Add("idle_watchdog", absl::Milliseconds(200), [this] { rpc_->CancelIdle(); });
  }
  // Memory back to the kernel once the daemon has been idle for a whole
  // period (no call admitted, none in flight), once per idle spell: under
  // load the heaps (TuneMallocForStreaming) and the tensor memory pool keep
  // their free memory for reuse.
  periodic_.Add("release_memory", absl::Seconds(2), [this] {
    const int64_t admitted = rpc_->admitted();
    const bool idle = admitted == last_admitted_ && rpc_->in_flight() == 0;
    if (idle && !released_since_activity_) {
      const uint64_t unmapped = store_->host_memory()->Trim();
      const int64_t freed = ReleaseFreeMemory();
      released_since_activity_ = true;
      Log(LogLevel::kDebug, "memory_released",
          {{"tensor_cache_bytes", unmapped}, {"heap_bytes", freed}});
    } else if (!idle) {
      released_since_activity_ = false;
    }
    last_admitted_ = admitted;
  });
  periodic_.Start();

  const ModelListing models = engine_->ListModels();
  const char* tls = tls_cert_pem_.empty() ? "off" : (tls_client_ca_pem_.empty() ? "on" : "mutual");
  Log(LogLevel::kInfo, "listening",
      {{"grpc", rpc_->target()},
       {"http", http_address},  // (tools read "grpc=… http=…" in this order)
       {"tls", tls},
       {"listeners", absl::StrJoin(rpc_->targets(), ",")},
       {"shm", config_.shm_dir.empty() ? "off" : config_.shm_dir},
       {"replica", replica_id_},
       {"peers", config_.peer_address.empty() ? "off" : config_.peer_address},
       {"auth", token_.empty() ? "off" : "token"},
       {"budget", config_.store_budget},
       {"device", config_.device},
       {"models", models.models.size()},
       {"model_errors", models.errors.size()}});
  return absl::OkStatus();
}

bool Daemon::Drain(absl::Duration deadline) {
  if (stopped_) return true;
  stopped_ = true;
  draining_ = true;
  bool idle = true;
  if (rpc_) {
    rpc_->StartDrain();
    Log(LogLevel::kInfo, "draining",
        {{"in_flight", rpc_->in_flight()}, {"timeout_s", absl::ToDoubleSeconds(deadline)}});
    idle = rpc_->WaitIdle(deadline);
    if (!idle) Log(LogLevel::kWarning, "drain_timeout", {{"cancelling", rpc_->in_flight()}});
    rpc_->Shutdown(absl::Seconds(1));
  }
  if (admin_) admin_->Stop();
  periodic_.Stop();
  if (rpc_) Log(LogLevel::kInfo, "stopped", {{"clean", idle}});
  return idle;
}

ModelListing Daemon::Reload() {
  ModelListing listing = engine_->Reload();
  Log(LogLevel::kInfo, "reloaded",
      {{"models", listing.models.size()}, {"errors", listing.errors.size()}});
  return listing;
}

}  // namespace npystream
