#include "server/testing/in_process_server.h"

#include "proto/wire/channel_args.h"
#include "server/common/status_macros.h"

namespace npystream::testing {

absl::StatusOr<std::unique_ptr<InProcessServer>> InProcessServer::Start(Options options) {
  std::unique_ptr<InProcessServer> s(new InProcessServer());
  DaemonConfig config = options.config;
  config.listen = {"127.0.0.1:0"};
  for (const std::string& address : options.config.listen) {
    if (address.rfind("unix:", 0) == 0) config.listen.push_back(address);
  }
  config.http_listen = options.admin_port ? "127.0.0.1:0" : "";
  config.device = "cpu";
  config.store_budget = options.budget_bytes;
  config.model_repository = options.model_repository;
  DaemonEnv env;
  env.clock = options.clock;
  env.transfer = std::move(options.transfer);
  ASSIGN_OR_RETURN(s->daemon_, Daemon::Create(config, std::move(env)));
  RETURN_IF_ERROR(s->daemon_->Start());
  return s;
}

std::shared_ptr<grpc::Channel> InProcessServer::NewChannel() const {
  return grpc::CreateCustomChannel(target(), grpc::InsecureChannelCredentials(),
                                   wire::StreamingChannelArguments());
}

}  // namespace npystream::testing
