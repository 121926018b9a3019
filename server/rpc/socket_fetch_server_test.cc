#include "server/rpc/socket_fetch_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "npystream/v1/tensors.pb.h"
#include "proto/wire/socket_fetch.h"
#include "server/testing/store_testing.h"
#include "server/testing/temp_dir.h"

namespace npystream::rpc {
namespace {

// A client written from proto/wire/socket_fetch.h.
class Conn {
 public:
  explicit Conn(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Conn() { close(fd_); }
  bool connected() const { return connected_; }
  void Send(const std::string& bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Up to `n` bytes; fewer when the server hung up.
  std::string Read(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = recv(fd_, out.data() + got, n - got, MSG_WAITALL);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
  }
  // (code, body) of one reply.
  std::pair<uint32_t, std::string> Reply() {
    auto prefix = wire::DecodeSocketFetchReplyPrefix(Read(wire::kSocketFetchPrefixBytes));
    if (!prefix.ok()) return {~0u, std::string(prefix.status().message())};
    return {prefix->code, Read(prefix->length)};
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class SocketFetchServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    TensorStore::Options store_options;
    store_options.budget_bytes = 1 << 30;
    store_ = *TensorStore::Create(store_options);
    transfer_ = NewCpuTransfer();
    CallGate::Options gate_options;
    gate_options.token = "t0k";
    gate_ = std::make_unique<CallGate>(gate_options);
    options_.path = dir_.path() + "/s.fetch";
    options_.store = store_.get();
    options_.transfer = transfer_.get();
    options_.gate = gate_.get();
    // 256 MiB: far more than a Unix socket buffers.
    auto big = testing::InsertNamed(store_.get(), torch::ones({64 << 20}, torch::kFloat32),
                                    npy::DType::kFloat32, "big");
    ASSERT_TRUE(big.ok()) << big.status();
  }

  testing::TempDir dir_{"/tmp", "socket_fetch_server_test"};
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<Transfer> transfer_;
  std::unique_ptr<CallGate> gate_;
  SocketFetchServer::Options options_;
};

TEST_F(SocketFetchServerTest, StopCutsAFetchInProgressAndJoins) {
  auto server = SocketFetchServer::Start(options_);
  ASSERT_TRUE(server.ok()) << server.status();
  Conn reader(options_.path);
  ASSERT_TRUE(reader.connected());
  reader.Send(wire::EncodeSocketFetchRequest("Bearer t0k", "big"));
  auto [code, info_bytes] = reader.Reply();
  ASSERT_EQ(code, 0u) << info_bytes;
  v1::TensorInfo info;
  ASSERT_TRUE(info.ParseFromString(info_bytes));
  ASSERT_EQ(info.nbytes(), uint64_t{256} << 20);
  EXPECT_EQ(reader.Read(1000).size(), 1000u);  // the server now blocks in send
  const auto start = std::chrono::steady_clock::now();
  (*server)->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_LT(reader.Read(info.npy_bytes()).size(), info.npy_bytes());  // a short stream
  struct stat st;
  EXPECT_NE(lstat(options_.path.c_str(), &st), 0);  // the socket file is gone
  EXPECT_EQ(gate_->in_flight(), 0);
  EXPECT_FALSE(Conn(options_.path).connected());
}

TEST_F(SocketFetchServerTest, AStalledReaderIsCutOffAfterTheSendTimeout) {
  options_.send_timeout = absl::Milliseconds(300);
  auto server = *SocketFetchServer::Start(options_);
  Conn stalled(options_.path);
  stalled.Send(wire::EncodeSocketFetchRequest("Bearer t0k", "big"));
  for (int i = 0; i < 100 && gate_->admitted() == 0; ++i) usleep(10000);
  usleep(600000);  // past the timeout, reading nothing
  for (int i = 0; i < 300 && gate_->in_flight() != 0; ++i) usleep(10000);
  EXPECT_EQ(gate_->in_flight(), 0);
  auto [code, body] = stalled.Reply();
  EXPECT_EQ(code, 0u);
  EXPECT_LT(stalled.Read(uint64_t{256} << 20).size(), size_t{256} << 20);
  // The server serves others meanwhile and after.
  Conn next(options_.path);
  next.Send(wire::EncodeSocketFetchRequest("Bearer t0k", "missing"));
  EXPECT_EQ(next.Reply().first, static_cast<uint32_t>(absl::StatusCode::kNotFound));
}

TEST_F(SocketFetchServerTest, ConnectionsOverTheLimitAreRefusedByName) {
  options_.max_connections = 2;
  auto server = *SocketFetchServer::Start(options_);
  Conn a(options_.path), b(options_.path);
  // Both are served (one request each), so both are counted as live.
  for (Conn* c : {&a, &b}) {
    c->Send(wire::EncodeSocketFetchRequest("", "big"));
    EXPECT_EQ(c->Reply().first, static_cast<uint32_t>(absl::StatusCode::kUnauthenticated));
  }
  Conn third(options_.path);
  auto [code, message] = third.Reply();
  EXPECT_EQ(code, static_cast<uint32_t>(absl::StatusCode::kUnavailable));
  EXPECT_NE(message.find("2 connections"), std::string::npos) << message;
}

TEST_F(SocketFetchServerTest, AStaleSocketIsReplacedAnyOtherFileIsNot) {
  {
    auto first = *SocketFetchServer::Start(options_);
    first->Stop();
  }
  // A socket left by a daemon that died (bound, never unlinked).
  const int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options_.path.data(), options_.path.size());
  ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(stale);
  auto second = SocketFetchServer::Start(options_);
  ASSERT_TRUE(second.ok()) << second.status();
  (*second)->Stop();
  std::ofstream(options_.path) << "not a socket";
  auto refused = SocketFetchServer::Start(options_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find(options_.path), std::string::npos);
  std::ifstream kept(options_.path);
  std::string text;
  std::getline(kept, text);
  EXPECT_EQ(text, "not a socket");
}

}  // namespace
}  // namespace npystream::rpc
