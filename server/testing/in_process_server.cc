#include "server/testing/in_process_server.h"

#include "server/common/status_macros.h"

namespace npystream::testing {

absl::StatusOr<std::unique_ptr<InProcessServer>> InProcessServer::Start(Options options) {
  std::unique_ptr<InProcessServer> s(new InProcessServer());
  TensorStore::Options store_options;
  store_options.clock = options.clock;
  store_options.budget_bytes = options.budget_bytes;
  ASSIGN_OR_RETURN(s->store_, TensorStore::Create(store_options));
  s->transfer_ = options.transfer ? std::move(options.transfer) : NewCpuTransfer();
  rpc::RpcServer::Options rpc_options;
  rpc_options.listen = "127.0.0.1:0";
  rpc_options.store = s->store_.get();
  rpc_options.transfer = s->transfer_.get();
  rpc_options.metrics = options.metrics;
  rpc_options.put_limits = options.put_limits;
  ASSIGN_OR_RETURN(s->server_, rpc::RpcServer::Start(rpc_options));
  return s;
}

std::shared_ptr<grpc::Channel> InProcessServer::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  return grpc::CreateCustomChannel(target(), grpc::InsecureChannelCredentials(), args);
}

}  // namespace npystream::testing
