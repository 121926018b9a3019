#include "client/cpp/npystream_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"
#include "proto/wire/socket_fetch.h"
#include "server/npy/npy_writer.h"
#include "server/testing/fake_copy_device.h"
#include "server/testing/in_process_server.h"
#include "server/testing/numpy_cases_testing.h"
#include "server/testing/temp_dir.h"
#include "server/transfer/device_transfer.h"

namespace npystream {
namespace {

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = *testing::InProcessServer::Start();
    ClientOptions options;
    options.target = server_->target();
    client_ = *Client::Connect(options);
  }
  std::unique_ptr<testing::InProcessServer> server_;
  std::unique_ptr<Client> client_;
};

// FetchInto of `handle` into `*received` that sets its stop flag at the
// first progress call; `*progress_calls` counts the calls that came.
absl::Status FetchStoppedAtFirstProgress(Client* client, const std::string& handle,
                                         std::string* received, int* progress_calls) {
  std::atomic<bool> stop{false};
  return client
      ->FetchInto(
          handle,
          [&](const v1::TensorInfo& i, absl::string_view) -> absl::StatusOr<char*> {
            received->resize(i.nbytes());
            return received->data();
          },
          [&](uint64_t, uint64_t) {
            ++*progress_calls;
            stop.store(true);
          },
          /*chunk_bytes=*/0, /*view=*/{}, &stop)
      .status();
}

// The daemon counts a call when the call ends there, which the client may
// see first: the scrape once it holds `want` (the last one after 5 s).
std::string ScrapeOnceItShows(testing::InProcessServer* server, const std::string& want) {
  std::string scrape;
  for (int i = 0; i < 500; ++i) {
    scrape = server->daemon()->metrics()->Scrape();
    if (scrape.find(want) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return scrape;
}

TEST_F(ClientTest, PutFileThenFetchBuffersAndFilesAreNumpyBytes) {
  const std::string dir = npy::testing::NumpyCasesDir();
  for (const char* name : {"valid_float32_3.npy", "valid_bool_0.npy", "valid_complex128_4.npy",
                           "valid_uint64_7.npy"}) {
    SCOPED_TRACE(name);
    const std::string path = dir + "/" + name;
    const std::string expected = npy::testing::ReadFile(path);
    auto info = client_->PutFile(path, {});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->npy_bytes(), expected.size());
    std::vector<char> buffer;
    auto fetched = client_->FetchToBuffer(info->handle(), &buffer);
    ASSERT_TRUE(fetched.ok()) << fetched.status();
    EXPECT_EQ(std::string(buffer.begin(), buffer.end()), expected);
    const std::string out = dir + "/out.npy";
    ASSERT_TRUE(client_->FetchToFile(info->handle(), out).ok());
    EXPECT_EQ(npy::testing::ReadFile(out), expected);
  }
}

// The header and the payload come from two places (as from a Python array);
// the payload spans several PutRequests and ends mid-chunk.
TEST_F(ClientTest, PutPartsStreamsAHeaderAndAPayloadFromTwoPlaces) {
  npy::ArrayMeta meta;
  meta.dtype = npy::DType::kUInt8;
  meta.shape = {(3 << 20) + 5};
  const std::string header = npy::WriteHeader(meta);
  std::string payload(meta.NumBytes(), '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + i / 4096);
  auto info = client_->PutParts(header, payload, {});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->npy_bytes(), header.size() + payload.size());
  std::vector<char> buffer;
  ASSERT_TRUE(client_->FetchToBuffer(info->handle(), &buffer).ok());
  EXPECT_TRUE(std::string(buffer.begin(), buffer.end()) == header + payload);
  // An empty payload (a zero-size array) is a header alone.
  meta.shape = {0, 3};
  auto empty = client_->PutParts(npy::WriteHeader(meta), "", {});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->nbytes(), 0u);
}

TEST_F(ClientTest, ErrorsKeepTheServersCode) {
  std::vector<char> buffer;
  auto missing = client_->FetchToBuffer("nope", &buffer);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Stat("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Release("nope").code(), absl::StatusCode::kNotFound);
  auto bad = client_->PutBytes("not an npy file at all", {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("bad magic"), std::string::npos);
}

// A stop flag set during a fetch cancels the call on the daemon: the rest
// of a 64 MiB tensor is not received, and the next fetch works.
TEST_F(ClientTest, AStopFlagCancelsTheFetch) {
  npy::ArrayMeta meta;
  meta.dtype = npy::DType::kUInt8;
  meta.shape = {64 << 20};
  const std::string header = npy::WriteHeader(meta);
  const std::string payload(meta.NumBytes(), '\x5a');
  PutOptions options;
  options.name = "big";
  ASSERT_TRUE(client_->PutParts(header, payload, options).ok());
  std::string received;
  int progress_calls = 0;
  const absl::Status stopped =
      FetchStoppedAtFirstProgress(client_.get(), "big", &received, &progress_calls);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled) << stopped;
  EXPECT_NE(stopped.message().find("'big' stopped"), std::string::npos) << stopped;
  EXPECT_EQ(progress_calls, 1);  // every 4 MiB: nothing was received after the stop
  std::vector<char> again;
  ASSERT_TRUE(client_->FetchToBuffer("big", &again).ok());
  EXPECT_EQ(again.size(), header.size() + payload.size());
  // The daemon saw the first fetch cancelled, not completed.
  const std::string want = "npystream_rpc_requests_total{code=\"CANCELLED\",method=\"Fetch\"} 1";
  const std::string scrape = ScrapeOnceItShows(server_.get(), want);
  EXPECT_NE(scrape.find(want), std::string::npos) << scrape;
}

TEST_F(ClientTest, StatListRelease) {
  const std::string npy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_int8_3.npy");
  PutOptions options;
  options.name = "named";
  ASSERT_TRUE(client_->PutBytes(npy, options).ok());
  auto stat = client_->Stat("named");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->dtype(), "|i1");
  auto list = client_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE(client_->Release("named").ok());
  EXPECT_TRUE(client_->List()->empty());
}

// Same host: a daemon with --shm-dir and a Unix socket; Map, Allocate/Commit
// and FetchToBuffer through the file, against the streamed bytes.
TEST(ClientShmTest, MapAllocateCommitAndFetchThroughTheFile) {
  testing::TempDir dir("/dev/shm", "npystream_client_test");
  const std::string& root = dir.path();
  ASSERT_FALSE(root.empty());
  testing::InProcessServer::Options server_options;
  server_options.config.shm_dir = root + "/tensors";
  server_options.config.listen = {"unix://" + root + "/sock"};
  auto server = *testing::InProcessServer::Start(std::move(server_options));
  ClientOptions options;
  options.target = "unix://" + root + "/sock";
  auto client = *Client::Connect(options);
  options.shm = false;
  auto streaming = *Client::Connect(options);

  PutOptions put;
  put.name = "direct";
  auto allocated = client->Allocate("<i8", {2, 500}, put);
  ASSERT_TRUE(allocated.ok()) << allocated.status();
  ASSERT_NE((*allocated)->mutable_data(), nullptr);
  ASSERT_EQ((*allocated)->size(), 8000u);
  for (int64_t i = 0; i < 1000; ++i) {
    std::memcpy((*allocated)->mutable_data() + 8 * i, &i, 8);
  }
  auto committed = client->Commit(*std::move(allocated));
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->dtype(), "<i8");

  std::vector<char> streamed, shared;
  ASSERT_TRUE(streaming->FetchToBuffer("direct", &streamed).ok());
  ASSERT_TRUE(client->FetchToBuffer("direct", &shared).ok());
  EXPECT_EQ(shared, streamed);
  auto mapped = client->Map("direct");
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(std::string((*mapped)->npy(), (*mapped)->npy_size()),
            std::string(streamed.begin(), streamed.end()));
  EXPECT_EQ((*mapped)->mutable_data(), nullptr);
  ASSERT_TRUE(client->Release("direct").ok());
  int64_t last = 0;
  std::memcpy(&last, (*mapped)->data() + 8 * 999, 8);
  EXPECT_EQ(last, 999);  // the mapping outlives the release
  EXPECT_EQ(client->Map("direct").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(streaming->Map("direct").status().code(), absl::StatusCode::kFailedPrecondition);
  mapped->reset();
  server.reset();
}

// Fetches over a Unix socket go through the plain fetch socket beside it,
// here with every payload staged through a ring over a fake device whose
// copies complete out of order (a GPU tensor's path), and equal the gRPC
// stream's bytes; errors keep their code; `plain_fetch = false` and a
// daemon without the socket both stream over gRPC.
TEST(ClientPlainFetchTest, UnixSocketFetchesGoThroughThePlainSocket) {
  testing::TempDir dir("/tmp", "npystream_plain_fetch_test");
  const std::string& root = dir.path();
  ASSERT_FALSE(root.empty());
  FakeCopyDevice device(/*streams=*/3, /*seed=*/17);
  DeviceTransfer::Options to;
  to.devices["cpu"] = &device;
  to.ring_bytes = 4 << 20;
  to.slot_bytes = 256 << 10;
  to.stage_host_tensors = true;
  testing::InProcessServer::Options server_options;
  server_options.transfer = *DeviceTransfer::Create(to);
  server_options.config.listen = {"unix://" + root + "/sock"};
  auto server = *testing::InProcessServer::Start(std::move(server_options));
  ClientOptions options;
  options.target = "unix://" + root + "/sock";
  auto plain = *Client::Connect(options);
  options.plain_fetch = false;
  auto streaming = *Client::Connect(options);

  const std::string dir_cases = npy::testing::NumpyCasesDir();
  for (const char* name : {"valid_float32_3.npy", "valid_bool_0.npy", "valid_complex128_4.npy",
                           "valid_uint64_7.npy"}) {
    SCOPED_TRACE(name);
    const std::string expected = npy::testing::ReadFile(dir_cases + "/" + name);
    auto info = streaming->PutFile(dir_cases + "/" + name, {});
    ASSERT_TRUE(info.ok()) << info.status();
    std::vector<char> via_plain, via_grpc;
    ASSERT_TRUE(plain->FetchToBuffer(info->handle(), &via_plain).ok());
    ASSERT_TRUE(streaming->FetchToBuffer(info->handle(), &via_grpc).ok());
    EXPECT_EQ(std::string(via_plain.begin(), via_plain.end()), expected);
    EXPECT_EQ(via_grpc, via_plain);
  }
  // A payload many slots long, received in place with progress.
  npy::ArrayMeta meta;
  meta.dtype = npy::DType::kUInt8;
  meta.shape = {(9 << 20) + 3};
  const std::string header = npy::WriteHeader(meta);
  std::string payload(meta.NumBytes(), '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 13 + i / 7);
  PutOptions big;
  big.name = "big";
  ASSERT_TRUE(streaming->PutParts(header, payload, big).ok());
  std::string received;
  uint64_t last_progress = 0;
  auto info = plain->FetchInto(
      "big",
      [&](const v1::TensorInfo& i, absl::string_view h) -> absl::StatusOr<char*> {
        EXPECT_EQ(h, header);
        received.resize(i.nbytes());
        return received.data();
      },
      [&](uint64_t done, uint64_t total) {
        EXPECT_GT(done, last_progress);
        EXPECT_EQ(total, header.size() + payload.size());
        last_progress = done;
      });
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(received == payload);
  EXPECT_EQ(last_progress, header.size() + payload.size());
  // A place that refuses stops the fetch with its status; the next one works.
  EXPECT_EQ(plain
                ->FetchInto("big",
                            [](const v1::TensorInfo&, absl::string_view) -> absl::StatusOr<char*> {
                              return absl::ResourceExhaustedError("no room");
                            })
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  std::vector<char> again;
  ASSERT_TRUE(plain->FetchToBuffer("big", &again).ok());
  EXPECT_EQ(again.size(), header.size() + payload.size());
  EXPECT_EQ(plain->FetchToBuffer("missing", &again).status().code(), absl::StatusCode::kNotFound);

  // The daemon counted the plain client's fetches (4, big twice, the one it
  // hung up on, missing) apart from the streamed ones (4).
  const std::string scrape = server->daemon()->metrics()->Scrape();
  EXPECT_NE(scrape.find("npystream_rpc_requests_total{code=\"OK\",method=\"PlainFetch\"} 6"),
            std::string::npos)
      << scrape;
  EXPECT_NE(scrape.find("npystream_rpc_requests_total{code=\"OK\",method=\"Fetch\"} 4"),
            std::string::npos);
  EXPECT_NE(scrape.find("npystream_rpc_requests_total{code=\"NOT_FOUND\",method=\"PlainFetch\"} 1"),
            std::string::npos);
  EXPECT_NE(scrape.find("npystream_rpc_requests_total{code=\"CANCELLED\",method=\"PlainFetch\"} 1"),
            std::string::npos);
  // A stop flag closes the plain connection within 4 MiB.
  int progress_calls = 0;
  const absl::Status stopped =
      FetchStoppedAtFirstProgress(plain.get(), "big", &received, &progress_calls);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled) << stopped;
  EXPECT_EQ(progress_calls, 1);
  ASSERT_TRUE(plain->FetchToBuffer("big", &again).ok());
  EXPECT_EQ(again.size(), header.size() + payload.size());
  device.Drain();
}

// Two replicas on Unix sockets with --peer-address: a client connected to
// b sends calls on a's handle straight to a; without routing b relays them
// to a; with a gone, b answers UNAVAILABLE naming a.
TEST(ClientRoutingTest, CallsOnAHandleGoToItsOwner) {
  testing::TempDir dir("/tmp", "npystream_routing_test");
  ASSERT_FALSE(dir.path().empty());
  const std::string peers = "unix://" + dir.path() + "/{replica}.sock";
  auto start = [&](const std::string& id) {
    testing::InProcessServer::Options o;
    o.config.replica_id = id;
    o.config.peer_address = peers;
    o.config.listen = {"unix://" + dir.path() + "/" + id + ".sock"};
    return *testing::InProcessServer::Start(std::move(o));
  };
  auto a = start("a");
  auto b = start("b");
  ClientOptions options;
  options.target = "unix://" + dir.path() + "/a.sock";
  auto on_a = *Client::Connect(options);
  const std::string npy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float32_3.npy");
  auto info = on_a->PutBytes(npy, {});
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string handle = info->handle();
  ASSERT_EQ(handle.substr(handle.size() - 2), "~a");

  options.target = "unix://" + dir.path() + "/b.sock";
  auto routed = *Client::Connect(options);
  std::vector<char> buffer;
  ASSERT_TRUE(routed->FetchToBuffer(handle, &buffer).ok());
  EXPECT_EQ(std::string(buffer.begin(), buffer.end()), npy);
  EXPECT_TRUE(routed->Stat(handle).ok());
  options.route = false;
  auto pinned = *Client::Connect(options);
  auto relayed = pinned->Stat(handle);  // b relays it to a
  ASSERT_TRUE(relayed.ok()) << relayed.status();
  EXPECT_EQ(relayed->handle(), handle);
  EXPECT_TRUE(routed->Release(handle).ok());
  EXPECT_EQ(on_a->Stat(handle).status().code(), absl::StatusCode::kNotFound);

  auto again = on_a->PutBytes(npy, {});
  ASSERT_TRUE(again.ok());
  a.reset();  // a is gone: b answers for it, relaying to a, which it cannot reach either
  absl::Status gone = routed->Stat(again->handle()).status();
  EXPECT_EQ(gone.code(), absl::StatusCode::kUnavailable) << gone;
  EXPECT_NE(gone.message().find("replica 'a'"), std::string::npos) << gone;
}

// A plain fetch socket that answers UNAVAILABLE (draining, over its
// connection limit) or hangs up sends the client to gRPC, which serves.
TEST(ClientPlainFetchTest, UnavailableOrHungUpPlainSocketMeansGrpc) {
  testing::TempDir dir("/tmp", "npystream_plain_fallback_test");
  const std::string& root = dir.path();
  ASSERT_FALSE(root.empty());
  testing::InProcessServer::Options server_options;
  server_options.config.listen = {"unix://" + root + "/sock"};
  auto server = *testing::InProcessServer::Start(std::move(server_options));
  const std::string plain = root + "/sock.fetch";
  ASSERT_EQ(unlink(plain.c_str()), 0);  // replaced by a fake below
  const int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, plain.data(), plain.size());
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  std::thread fake([listener] {
    for (int i = 0;; ++i) {  // first an UNAVAILABLE reply, then hang-ups
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return;  // shut down by the test
      if (i == 0) {
        const std::string reply = wire::EncodeSocketFetchReplyPrefix(
                                      static_cast<uint32_t>(absl::StatusCode::kUnavailable), 4) +
                                  "busy";
        send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      close(fd);
    }
  });
  ClientOptions options;
  options.target = "unix://" + root + "/sock";
  auto client = *Client::Connect(options);
  const std::string npy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float32_3.npy");
  PutOptions put;
  put.name = "x";
  ASSERT_TRUE(client->PutBytes(npy, put).ok());
  for (int i = 0; i < 2; ++i) {
    std::vector<char> buffer;
    auto info = client->FetchToBuffer("x", &buffer);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(std::string(buffer.begin(), buffer.end()), npy);
  }
  shutdown(listener, SHUT_RDWR);
  fake.join();
  close(listener);
  // The server counts a call after its last write, which the client may see
  // first: wait for the count rather than race it.
  const std::string want = "npystream_rpc_requests_total{code=\"OK\",method=\"Fetch\"} 2";
  const std::string scrape = ScrapeOnceItShows(server.get(), want);
  EXPECT_NE(scrape.find(want), std::string::npos) << scrape;
}

}  // namespace
}  // namespace npystream
