// libFuzzer target: whole connections to a real SocketFetchServer (started
// once on a Unix socket over a CPU store with a token set): the input's bytes
// are one client's side of the plain fetch protocol. The server must never
// crash, must answer or close every connection, and must still serve the
// stored tensor's exact .npy bytes to a well-formed request afterwards.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npystream/v1/tensors.pb.h"
#include "proto/wire/socket_fetch.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/socket_fetch_server.h"
#include "server/store/tensor_store.h"
#include "server/testing/socket_exchange.h"
#include "server/transfer/transfer.h"

namespace {

struct Env {
  std::unique_ptr<npystream::TensorStore> store;
  std::unique_ptr<npystream::Transfer> transfer;
  std::unique_ptr<npystream::rpc::CallGate> gate;
  std::unique_ptr<npystream::rpc::SocketFetchServer> server;
  std::string path;
  std::string expected;  // tensor "t"'s .npy bytes
};

Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env;
    npystream::TensorStore::Options store_options;
    store_options.budget_bytes = 16 << 20;
    e->store = std::move(*npystream::TensorStore::Create(store_options));
    e->transfer = npystream::NewCpuTransfer();
    npystream::rpc::CallGate::Options gate_options;
    gate_options.token = "fuzz";
    e->gate = std::make_unique<npystream::rpc::CallGate>(gate_options);
    npystream::TensorStore::InsertOptions insert;
    insert.name = "t";
    auto t = e->store->Insert(torch::arange(3000, torch::kFloat32).reshape({30, 100}),
                              npystream::npy::DType::kFloat32, insert);
    if (!t.ok()) std::abort();
    e->expected = (*t)->npy_header();
    e->expected.append((*t)->host_data(), (*t)->info().nbytes);
    char dir[] = "/tmp/socket_fetch_fuzz_XXXXXX";
    if (mkdtemp(dir) == nullptr) std::abort();
    e->path = std::string(dir) + "/s.fetch";
    npystream::rpc::SocketFetchServer::Options options;
    options.path = e->path;
    options.store = e->store.get();
    options.transfer = e->transfer.get();
    options.gate = e->gate.get();
    options.send_timeout = absl::Seconds(2);
    auto server = npystream::rpc::SocketFetchServer::Start(options);
    if (!server.ok()) std::abort();
    e->server = std::move(*server);
    return e;
  }();
  return *env;
}

// One connection's exchange (see ExchangeAndClose).
std::string Exchange(const std::string& bytes) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, GetEnv().path.data(), GetEnv().path.size());
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::abort();
  return npystream::testing::ExchangeAndClose(fd, bytes, "socket_fetch_fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env& env = GetEnv();
  FuzzedDataProvider input(data, size);
  // Mostly well-framed requests with fuzzed fields (so the parser's later
  // checks and the store are reached), sometimes raw bytes.
  std::string bytes;
  if (input.ConsumeIntegralInRange<int>(0, 3) == 0) {
    bytes = input.ConsumeRemainingBytesAsString();
  } else {
    while (input.remaining_bytes() > 0) {
      const std::string auth =
          input.ConsumeBool() ? "Bearer fuzz" : input.ConsumeRandomLengthString(64);
      const std::string handle = input.ConsumeBool() ? "t" : input.ConsumeRandomLengthString(64);
      bytes += npystream::wire::EncodeSocketFetchRequest(auth, handle);
    }
  }
  Exchange(bytes);
  // The server and the tensor are intact.
  const std::string good = Exchange(npystream::wire::EncodeSocketFetchRequest("Bearer fuzz", "t"));
  auto reply = npystream::wire::DecodeSocketFetchReplyPrefix(good);
  if (!reply.ok() || reply->code != 0) std::abort();
  npystream::v1::TensorInfo info;
  const size_t at = npystream::wire::kSocketFetchPrefixBytes;
  if (good.size() < at + reply->length || !info.ParseFromString(good.substr(at, reply->length)) ||
      good.substr(at + reply->length) != env.expected) {
    std::fprintf(stderr, "socket_fetch_fuzz: the stored tensor came back different\n");
    std::abort();
  }
  return 0;
}
