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
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/http/admin_server.h"
#include "server/testing/engine_fuzz_env.h"
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

// Sends `bytes`, half-closes, and returns what came back before the daemon
// closed the connection (aborts when it keeps it open for 5 s).
std::string Exchange(const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(Server().port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::abort();
  const int one = 1;  // small exchanges: no Nagle / delayed-ACK stalls
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the daemon closed early (a refused request): fine
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) {
      std::fprintf(stderr, "admin_socket_fuzz: the daemon kept a half-closed connection open\n");
      std::abort();
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
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
