// libFuzzer target: whole connections to the real admin port (started once
// on 127.0.0.1:0 over the fuzz engine and store): either raw bytes as an
// HTTP/1.1 connection (requests, bodies, the dashboard's, tensors', infer
// and /v2 routes), or a valid WebSocket upgrade to the demo model's
// subscribe route followed by fuzzer-made frames. The daemon must never
// crash, must close or answer every connection, and must still answer
// /healthz and keep the stored tensors afterwards.
#include <fuzzer/FuzzedDataProvider.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>

#include "server/http/admin_server.h"
#include "server/testing/engine_fuzz_env.h"
#include "server/testing/socket_exchange.h"
#include "server/transfer/transfer.h"

namespace {

constexpr char kUpgrade[] =
    "GET /v1/models/demo/subscribe?layers=conv1,fc HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

npystream::AdminServer& Server() {
  static npystream::AdminServer* server = [] {
    npystream::testing::EngineFuzzEnv& env = npystream::testing::GetEngineFuzzEnv();
    static std::unique_ptr<npystream::Transfer> transfer = npystream::NewCpuTransfer();
    npystream::AdminServer::Options options;
    options.listen = "127.0.0.1:0";
    options.scrape = [] { return std::string("# fuzz\n"); };
    options.store = env.store.get();
    options.transfer = transfer.get();
    options.engine = env.engine.get();
    options.put_limits = env.limits;
    options.infer_threads = 2;
    options.not_ready_reason = [] { return std::string(); };
    auto started = npystream::AdminServer::Start(options);
    if (!started.ok()) std::abort();
    return started->release();
  }();
  return *server;
}

// One connection to the admin port (see ExchangeAndClose).
std::string Exchange(const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(Server().port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::abort();
  const int one = 1;  // small exchanges: no Nagle / delayed-ACK stalls
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return npystream::testing::ExchangeAndClose(fd, bytes, "admin_socket_fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  npystream::testing::EngineFuzzEnv& env = npystream::testing::GetEngineFuzzEnv();
  FuzzedDataProvider input(data, size);
  const bool websocket = input.ConsumeBool();
  const std::string bytes = input.ConsumeRemainingBytesAsString();
  const std::string reply = Exchange(websocket ? kUpgrade + bytes : bytes);
  if (websocket && reply.rfind("HTTP/1.1 101", 0) != 0) std::abort();  // the upgrade is valid
  // Still serving, and the two stored tensors are still there.
  if (Exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200", 0) != 0 ||
      !env.store->Acquire("x1").ok() || !env.store->Acquire("i1").ok()) {
    std::abort();
  }
  return 0;
}
