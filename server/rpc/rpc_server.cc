#include "server/rpc/rpc_server.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/wire/channel_args.h"
#include "proto/wire/socket_fetch.h"
#include "server/common/log.h"
#include "server/rpc/inference_service.h"
#include "server/rpc/oip_service.h"
#include "server/rpc/socket_fetch_server.h"
#include "server/rpc/tensors_service.h"

namespace npystream::rpc {
namespace {

// Infer calls in the engine at once. Each holds its thread while it waits
// for a model instance or for its batch to fill, so this bounds the largest
// dynamic batch that concurrent clients can form (max_batch 64 by default).
constexpr int kInferWorkers = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(const Options& options) {
  if (options.store == nullptr || options.transfer == nullptr) {
    return absl::InvalidArgumentError("RpcServer needs a store and a transfer engine");
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<RpcServer> server(new RpcServer());
  CallGate::Options gate_options;
  gate_options.token = options.token;
  gate_options.idle_timeout = options.idle_timeout;
  gate_options.metrics = options.metrics;
  server->gate_ = std::make_unique<CallGate>(gate_options);
  const views::Views* views = options.views;
  if (views == nullptr) {
    server->own_views_ = std::make_unique<views::Views>(
        views::Views::Options{options.transfer, options.store, nullptr, false});
    views = server->own_views_.get();
  }
  server->tensors_ =
      std::make_unique<TensorsService>(options.store, options.transfer, views, options.put_limits,
                                       server->gate_.get(), options.topology, options.peers);

  grpc::ServerBuilder builder;
  if (options.listen.empty()) return absl::InvalidArgumentError("RpcServer needs an address");
  std::vector<int> ports(options.listen.size(), 0);
  for (size_t i = 0; i < options.listen.size(); ++i) {
    const bool unix_socket = absl::StartsWith(options.listen[i], "unix:");
    builder.AddListeningPort(options.listen[i],
                             options.credentials && !unix_socket
                                 ? options.credentials
                                 : grpc::InsecureServerCredentials(),
                             &ports[i]);
  }
  builder.RegisterService(server->tensors_.get());
  if (options.engine != nullptr) {
    // One pool for every call that blocks on a model (npystream Infer and
    // the Open Inference Protocol's).
    server->infer_workers_ = std::make_unique<ThreadPool>(kInferWorkers);
    server->inference_ = std::make_unique<InferenceService>(
        options.engine, options.store, views, options.put_limits, server->gate_.get(),
        server->infer_workers_.get(), options.peers);
    builder.RegisterService(server->inference_.get());
    server->oip_ = std::make_unique<OipService>(options.engine, options.store, options.put_limits,
                                                server->gate_.get(), server->infer_workers_.get());
    builder.RegisterService(server->oip_.get());
  }
  wire::ApplyStreamingServerArguments(&builder);
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  if (options.gzip_replies) builder.SetDefaultCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  server->server_ = builder.BuildAndStart();
  const std::string all = absl::StrJoin(options.listen, ", ");
  if (server->server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("could not listen for gRPC on ", all));
  }
  for (size_t i = 0; i < options.listen.size(); ++i) {
    const std::string& address = options.listen[i];
    if (ports[i] == 0) {
      return absl::UnavailableError(absl::StrCat("could not listen for gRPC on ", address));
    }
    if (absl::StartsWith(address, "unix:")) {
      server->targets_.push_back(address);
      SocketFetchServer::Options plain;
      plain.path = wire::SocketFetchPath(address);
      plain.store = options.store;
      plain.transfer = options.transfer;
      plain.gate = server->gate_.get();
      plain.send_timeout = options.idle_timeout;
      plain.peers = options.peers;
      auto started = SocketFetchServer::Start(plain);
      if (!started.ok()) {
        // An optimisation only (gRPC serves the same fetches on the socket
        // itself), so say why and go on: e.g. a path with room for the gRPC
        // socket's name but not for ".fetch" after it.
        Log(LogLevel::kWarning, "plain_fetch_unavailable",
            {{"path", plain.path}, {"error", started.status().message()}});
        continue;
      }
      server->plain_fetch_.push_back(std::move(*started));
      continue;
    }
    std::string host = address.substr(0, address.rfind(':'));
    if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
    server->targets_.push_back(absl::StrCat(host, ":", ports[i]));
    if (server->port_ == 0) {
      server->port_ = ports[i];
      server->target_ = server->targets_.back();
    }
  }
  if (server->target_.empty()) server->target_ = server->targets_.front();
  return server;
}

void RpcServer::StartDrain() {
  gate_->StartDrain();
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
}

void RpcServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  StartDrain();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  server_->Wait();
  for (auto& plain : plain_fetch_) plain->Stop();
}

RpcServer::~RpcServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace npystream::rpc
