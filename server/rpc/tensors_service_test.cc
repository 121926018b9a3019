#include "server/rpc/tensors_service.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "npystream/v1/tensors.grpc.pb.h"
#include "proto/wire/channel_args.h"
#include "server/npy/npy_writer.h"
#include "server/rpc/fetch_reactor.h"
#include "server/testing/fake_copy_device.h"
#include "server/testing/in_process_server.h"
#include "server/testing/numpy_cases_testing.h"
#include "server/testing/store_testing.h"
#include "server/testing/temp_dir.h"
#include "server/transfer/device_transfer.h"

namespace npystream::rpc {
namespace {

using npystream::v1::FetchRequest;
using npystream::v1::FetchResponse;
using npystream::v1::PutRequest;
using npystream::v1::TensorInfo;
using npystream::v1::TensorRef;
using npystream::v1::Tensors;

constexpr size_t kRingBytes = 8 << 20;

// Streams `npy` in parts of `part` bytes after a header with `name`.
grpc::Status PutNpy(Tensors::Stub* stub, const std::string& npy, const std::string& name,
                    TensorInfo* info, size_t part = 1 << 20, bool send_header = true) {
  grpc::ClientContext ctx;
  auto writer = stub->Put(&ctx, info);
  PutRequest req;
  if (send_header) {
    req.mutable_header()->set_name(name);
    writer->Write(req);
  }
  for (size_t i = 0; i < npy.size(); i += part) {
    req.set_data(npy.substr(i, part));
    if (!writer->Write(req)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// Fetches `handle` into `out`, checking that only the first message carries
// the info and that no chunk exceeds what `chunk` asked for.
grpc::Status FetchNpy(Tensors::Stub* stub, const std::string& handle, std::string* out,
                      TensorInfo* info, uint32_t chunk = 0, int* messages = nullptr) {
  grpc::ClientContext ctx;
  FetchRequest req;
  req.set_handle(handle);
  req.set_chunk_bytes(chunk);
  auto reader = stub->Fetch(&ctx, req);
  FetchResponse resp;
  int n = 0;
  out->clear();
  while (reader->Read(&resp)) {
    if (n == 0) {
      *info = resp.info();
    } else {
      EXPECT_FALSE(resp.has_info()) << "info only in the first message";
    }
    if (chunk != 0) {
      EXPECT_LE(resp.data().size(), std::max<uint32_t>(chunk, kMinChunkBytes));
    }
    *out += resp.data();
    ++n;
  }
  if (messages != nullptr) *messages = n;
  return reader->Finish();
}

// Starts a fetch of `handle`, cancels it after the first message and drains
// it, as a client that walks away does; returns the call's status.
grpc::Status FetchThenCancel(Tensors::Stub* stub, const std::string& handle) {
  grpc::ClientContext ctx;
  FetchRequest req;
  req.set_handle(handle);
  auto reader = stub->Fetch(&ctx, req);
  FetchResponse resp;
  EXPECT_TRUE(reader->Read(&resp));
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  return reader->Finish();
}

// Every test runs twice: on the CPU transfer engine, and with Put and Fetch
// staged through a pinned ring over a fake device whose copies complete out
// of order (the GPU path's logic); then every slot must be back at the end.
class TensorsServiceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    testing::InProcessServer::Options options;
    options.budget_bytes = 512 << 20;
    if (GetParam()) {
      device_ = std::make_unique<FakeCopyDevice>(/*streams=*/4, /*seed=*/5);
      DeviceTransfer::Options to;
      to.devices["cpu"] = device_.get();
      to.ring_bytes = kRingBytes;
      to.slot_bytes = 256 << 10;
      to.stage_host_tensors = true;
      auto transfer = *DeviceTransfer::Create(to);
      ring_ = transfer.get();
      options.transfer = std::move(transfer);
    }
    server_ = *testing::InProcessServer::Start(std::move(options));
    stub_ = Tensors::NewStub(server_->NewChannel());
  }

  void TearDown() override {
    if (ring_ == nullptr) return;
    device_->Drain();
    for (int i = 0; i < 300 && ring_->free_staging_bytes() != kRingBytes; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(ring_->free_staging_bytes(), kRingBytes) << "a staging slot leaked";
    EXPECT_EQ(device_->pinned_bytes(), static_cast<int64_t>(kRingBytes));
  }

  grpc::Status Put(const std::string& npy, const std::string& name, TensorInfo* info,
                   size_t part = 1 << 20, bool send_header = true) {
    return PutNpy(stub_.get(), npy, name, info, part, send_header);
  }

  grpc::Status Fetch(const std::string& handle, std::string* out, TensorInfo* info,
                     uint32_t chunk = 0, int* messages = nullptr) {
    return FetchNpy(stub_.get(), handle, out, info, chunk, messages);
  }

  std::unique_ptr<FakeCopyDevice> device_;  // outlives the server
  DeviceTransfer* ring_ = nullptr;
  std::unique_ptr<testing::InProcessServer> server_;
  std::unique_ptr<Tensors::Stub> stub_;
};

// Every numpy reference file goes in through Put and comes back through
// Fetch byte-identical (Fortran-order files come back as numpy.save writes
// their C-order copy, so they are left to the Python tests).
TEST_P(TensorsServiceTest, NumpyFilesRoundTripByteIdentical) {
  int n = 0;
  const auto manifest = npy::testing::NumpyManifest();
  for (const auto& c : manifest["valid"]) {
    if (c["fortran_order"].get<bool>() || c["version"][0].get<int>() != 1 ||
        c["file"] == "valid_big_dims.npy") {
      continue;
    }
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    const std::string npy = npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/" + file);
    TensorInfo put_info;
    // Odd part sizes split the header across messages.
    ASSERT_TRUE(Put(npy, "", &put_info, 13 + n % 50).ok());
    EXPECT_EQ(put_info.dtype(), c["descr"].get<std::string>());
    EXPECT_EQ(put_info.npy_bytes(), npy.size());
    std::string back;
    TensorInfo info;
    ASSERT_TRUE(Fetch(put_info.handle(), &back, &info).ok());
    EXPECT_EQ(back, npy);
    EXPECT_EQ(info.handle(), put_info.handle());
    ++n;
  }
  EXPECT_GT(n, 100);
}

TEST_P(TensorsServiceTest, VersionTwoInputComesBackAsNumpySaveWritesIt) {
  const std::string dir = npy::testing::NumpyCasesDir();
  TensorInfo info;
  ASSERT_TRUE(Put(npy::testing::ReadFile(dir + "/valid_v2.npy"), "v2", &info).ok());
  std::string back;
  ASSERT_TRUE(Fetch("v2", &back, &info).ok());
  EXPECT_EQ(back.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(info.shape_size(), 2);
}

TEST_P(TensorsServiceTest, ChunksStayUnderTheLimit) {
  std::string npy = npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float64_7.npy");
  TensorInfo info;
  ASSERT_TRUE(Put(npy, "big", &info).ok());
  std::string back;
  int messages = 0;
  ASSERT_TRUE(Fetch("big", &back, &info, 64 << 10, &messages).ok());
  EXPECT_EQ(back, npy);
  const int at_limit = static_cast<int>((npy.size() + (64 << 10) - 1) / (64 << 10));
  // Staged chunks also end where a staging slot does.
  const int slots = GetParam() ? static_cast<int>((npy.size() + (256 << 10) - 1) / (256 << 10)) : 0;
  EXPECT_GE(messages, at_limit);
  EXPECT_LE(messages, at_limit + slots);
  ASSERT_TRUE(Fetch("big", &back, &info, 100 << 20, &messages).ok());
  EXPECT_EQ(back, npy);
  EXPECT_GE(messages, 1);
  EXPECT_LE(messages, std::max(1, slots));
}

TEST_P(TensorsServiceTest, ErrorsHavePreciseCodes) {
  std::string back;
  TensorInfo info;
  grpc::Status s = Fetch("nope", &back, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("'nope'"), std::string::npos);

  const std::string good =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_int32_3.npy");
  s = Put(good, "", &info, 1 << 20, /*send_header=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("must carry the header"), std::string::npos);

  s = Put(good.substr(0, good.size() - 3), "short", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("truncated"), std::string::npos);

  s = Put(good.substr(0, 30), "short", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("inside the .npy header"), std::string::npos);

  s = Put(good + "xx", "long", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("longer than its header"), std::string::npos);

  const std::string be =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/invalid_big_endian.npy");
  s = Put(be, "be", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("big-endian"), std::string::npos);

  ASSERT_TRUE(Put(good, "dup", &info).ok());
  s = Put(good, "dup", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  grpc::ClientContext ctx;
  TensorRef ref;
  ref.set_handle("missing");
  npystream::v1::ReleaseResponse released;
  EXPECT_EQ(stub_->Release(&ctx, ref, &released).error_code(), grpc::StatusCode::NOT_FOUND);
  // Nothing above disturbed the stored tensor.
  ASSERT_TRUE(Fetch("dup", &back, &info).ok());
  EXPECT_EQ(back, good);
  EXPECT_EQ(server_->store()->size(), 1u);
  EXPECT_EQ(server_->store()->budget().used("cpu"), info.nbytes());
}

TEST_P(TensorsServiceTest, BudgetExceededIsResourceExhausted) {
  std::string npy = npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float64_7.npy");
  // 800 KB each; the budget is 512 MiB so fill it with a store-side insert.
  auto writer = server_->store()->BeginPut(
      {"filler", "cpu", 0, npy::ArrayMeta{npy::DType::kUInt8, {(512 << 20) - 1000}}});
  ASSERT_TRUE(writer.ok());
  TensorInfo info;
  grpc::Status s = Put(npy, "over", &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("store budget exceeded"), std::string::npos);
}

TEST_P(TensorsServiceTest, StatListRelease) {
  const std::string good =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_int32_3.npy");
  TensorInfo info;
  ASSERT_TRUE(Put(good, "a", &info).ok());
  ASSERT_TRUE(Put(good, "b", &info).ok());
  {
    grpc::ClientContext ctx;
    TensorRef ref;
    ref.set_handle("a");
    TensorInfo stat;
    ASSERT_TRUE(stub_->Stat(&ctx, ref, &stat).ok());
    EXPECT_EQ(stat.dtype(), "<i4");
    EXPECT_EQ(stat.shape_size(), 3);
    EXPECT_EQ(stat.npy_bytes(), good.size());
  }
  {
    grpc::ClientContext ctx;
    npystream::v1::ListResponse list;
    ASSERT_TRUE(stub_->List(&ctx, {}, &list).ok());
    EXPECT_EQ(list.tensors_size(), 2);
  }
  {
    grpc::ClientContext ctx;
    TensorRef ref;
    ref.set_handle("a");
    npystream::v1::ReleaseResponse r;
    ASSERT_TRUE(stub_->Release(&ctx, ref, &r).ok());
    EXPECT_TRUE(r.released());
  }
  EXPECT_EQ(server_->store()->size(), 1u);
}

// A client that walks away mid-stream frees its pin; the server keeps serving.
TEST_P(TensorsServiceTest, CancelMidFetchReleasesEverything) {
  auto writer = server_->store()->BeginPut(
      {"huge", "cpu", 0, npy::ArrayMeta{npy::DType::kFloat32, {16 << 20}}});
  ASSERT_TRUE(writer.ok());
  std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 64; ++i) ASSERT_TRUE((*writer)->Append(zeros.data(), zeros.size()).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(FetchThenCancel(stub_.get(), "huge").error_code(), grpc::StatusCode::CANCELLED);
  }
  ASSERT_TRUE(server_->store()->Release("huge").ok());
  // Once gRPC drops the in-flight slices the tensor is freed.
  for (int i = 0; i < 200 && server_->store()->resident_count() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->store()->resident_count(), 0);
  EXPECT_EQ(server_->store()->budget().used("cpu"), 0u);
  std::string back;
  TensorInfo info;
  EXPECT_EQ(Fetch("huge", &back, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A client that cancels mid-Put leaves neither its name nor its budget
// behind, on either transfer engine.
TEST_P(TensorsServiceTest, CancelMidPutFreesNameAndBudgetThenAPutSucceeds) {
  npy::ArrayMeta meta{npy::DType::kFloat32, {4 << 20}};  // 16 MiB: 64 staging slots
  const std::string header = npy::WriteHeader(meta);
  std::string payload(meta.NumBytes(), '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + (i >> 17));
  for (int round = 0; round < 3; ++round) {
    grpc::ClientContext ctx;
    TensorInfo info;
    auto writer = stub_->Put(&ctx, &info);
    PutRequest req;
    req.mutable_header()->set_name("big");
    ASSERT_TRUE(writer->Write(req));
    req.clear_header();
    req.set_data(header + payload.substr(0, 1 << 20));
    ASSERT_TRUE(writer->Write(req));
    req.set_data(payload.substr(1 << 20, (5 << 20) + round * 77777));
    writer->Write(req);
    ctx.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 300 && server_->store()->budget().used("cpu") != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->store()->budget().used("cpu"), 0u);
  TensorInfo info;
  ASSERT_TRUE(Put(header + payload, "big", &info, 3 << 20).ok());
  std::string back;
  ASSERT_TRUE(Fetch("big", &back, &info).ok());
  EXPECT_TRUE(back == header + payload);
}

INSTANTIATE_TEST_SUITE_P(Transfer, TensorsServiceTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "StagingRing" : "Cpu";
                         });

// A Put while the ring is full and the device paused: every message is
// staged later, from another thread, long after the reactor moved on. Large
// messages arrive as many slices, and gRPC keeps a small slice's bytes inside
// the slice object, so staged bytes must be owned by what holds the slices
// (a use-after-free found under ASan in CancelMidPut when they were not).
TEST(StagedPutTest, BytesWaitingForASlotStayValid) {
  FakeCopyDevice device(/*streams=*/2, /*seed=*/9);
  DeviceTransfer::Options to;
  to.devices["cpu"] = &device;
  to.ring_bytes = 256 << 10;
  to.slot_bytes = 64 << 10;  // full after 256 KiB
  to.stage_host_tensors = true;
  testing::InProcessServer::Options options;
  options.transfer = *DeviceTransfer::Create(to);
  auto server = *testing::InProcessServer::Start(std::move(options));
  auto stub = Tensors::NewStub(server->NewChannel());
  for (size_t part : {size_t{13}, size_t{(1 << 20) + 13}}) {
    const int64_t n = part < 100 ? (48 << 10) : (12 << 20);
    npy::ArrayMeta meta{npy::DType::kUInt8, {n}};
    std::string npy = npy::WriteHeader(meta);
    for (int64_t i = 0; i < n; ++i) npy += static_cast<char>(i * 37 + (i >> 9));
    const std::string name = "staged" + std::to_string(part);
    device.SetPaused(true);  // no slot comes back for a while
    std::thread unpause([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      device.SetPaused(false);
    });
    TensorInfo info;
    grpc::Status s = PutNpy(stub.get(), npy, name, &info, part);
    unpause.join();
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::string got;
    ASSERT_TRUE(FetchNpy(stub.get(), name, &got, &info).ok());
    EXPECT_TRUE(got == npy) << part;
  }
}

// A large odd-sized Fetch through the staging ring (fake device,
// out-of-order copies): byte-identical for any chunk size, and a cancelled
// fetch returns every slot.
TEST(StagedFetchTest, RingPathIsByteIdenticalAndCancelReturnsSlots) {
  FakeCopyDevice device(/*streams=*/4, /*seed=*/3);
  DeviceTransfer::Options to;
  to.devices["cpu"] = &device;
  to.ring_bytes = 8 << 20;
  to.slot_bytes = 256 << 10;
  to.stage_host_tensors = true;
  auto transfer = *DeviceTransfer::Create(to);
  DeviceTransfer* ring_transfer = transfer.get();
  testing::InProcessServer::Options options;
  options.transfer = std::move(transfer);
  auto server = *testing::InProcessServer::Start(std::move(options));
  auto stub = Tensors::NewStub(server->NewChannel());
  const std::string npy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float64_7.npy");
  auto writer = server->store()->BeginPut(
      {"big", "cpu", 0, npy::ArrayMeta{npy::DType::kUInt8, {(24 << 20) + 12345}}});
  ASSERT_TRUE(writer.ok());
  std::string payload((24 << 20) + 12345, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + (i >> 13));
  ASSERT_TRUE((*writer)->Append(payload.data(), payload.size()).ok());
  auto stored = (*writer)->Commit();
  ASSERT_TRUE(stored.ok());
  const std::string expected = (*stored)->npy_header() + payload;
  stored->reset();
  for (uint32_t chunk : {0u, 100000u, 4u << 20}) {
    std::string got;
    TensorInfo info;
    ASSERT_TRUE(FetchNpy(stub.get(), "big", &got, &info, chunk).ok());
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected) << "chunk " << chunk;
  }
  for (int round = 0; round < 3; ++round) FetchThenCancel(stub.get(), "big");
  device.Drain();
  for (int i = 0; i < 300 && ring_transfer->free_staging_bytes() != size_t{8} << 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ring_transfer->free_staging_bytes(), size_t{8} << 20);
  EXPECT_EQ(device.pinned_bytes(), 8 << 20);
}

}  // namespace
}  // namespace npystream::rpc

namespace npystream::rpc {
namespace {

// Same host: Map, Allocate/Commit and Shm over a Unix socket with a token,
// tensors read through a ring over a fake device (the GPU path's logic).
class ShmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(root_.empty());
    const std::string token_file = root_ + "/token";
    std::ofstream(token_file) << "sesame\n";
    device_ = std::make_unique<FakeCopyDevice>(/*streams=*/3, /*seed=*/11);
    DeviceTransfer::Options to;
    to.devices["cpu"] = device_.get();
    to.ring_bytes = kRingBytes;
    to.slot_bytes = 64 << 10;
    to.stage_host_tensors = true;
    testing::InProcessServer::Options options;
    options.transfer = *DeviceTransfer::Create(to);
    options.budget_bytes = 64 << 20;
    options.config.shm_dir = root_ + "/tensors";
    options.config.auth_token_file = token_file;
    socket_ = "unix://" + root_ + "/npystream.sock";
    options.config.listen = {socket_};
    server_ = *testing::InProcessServer::Start(std::move(options));
    channel_ = grpc::CreateCustomChannel(socket_, grpc::InsecureChannelCredentials(),
                                         wire::StreamingChannelArguments());
    stub_ = Tensors::NewStub(channel_);
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    device_.reset();
  }
  void Prepare(grpc::ClientContext* ctx) { ctx->AddMetadata("authorization", "Bearer sesame"); }
  std::string FetchAll(const std::string& handle) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    FetchRequest req;
    req.set_handle(handle);
    auto reader = stub_->Fetch(&ctx, req);
    FetchResponse resp;
    std::string out;
    while (reader->Read(&resp)) out += resp.data();
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }
  grpc::Status Map(const std::string& handle, npystream::v1::MapResponse* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    npystream::v1::MapRequest req;
    req.set_handle(handle);
    return stub_->Map(&ctx, req, out);
  }

  testing::TempDir dir_{"/dev/shm", "npystream_service_test"};
  const std::string root_ = dir_.path();
  std::string socket_;
  std::unique_ptr<FakeCopyDevice> device_;
  std::unique_ptr<testing::InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Tensors::Stub> stub_;
};

TEST_F(ShmServiceTest, PutTensorsAreTheirFilesAndOthersAreCopiedOnce) {
  const std::string npy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/valid_float64_7.npy");
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    TensorInfo info;
    auto writer = stub_->Put(&ctx, &info);
    PutRequest req;
    req.mutable_header()->set_name("put");
    ASSERT_TRUE(writer->Write(req));
    req.set_data(npy);
    ASSERT_TRUE(writer->Write(req));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }
  npystream::v1::MapResponse map;
  ASSERT_TRUE(Map("put", &map).ok());
  EXPECT_EQ(npy::testing::ReadFile(map.path()), npy);
  EXPECT_EQ(map.npy_bytes(), npy.size());
  EXPECT_EQ(map.data_offset() % 64, 0u);
  EXPECT_EQ(map.info().handle(), "put");

  // An inference output (Inserted, not a file): Map copies it via the ring.
  std::string payload(300000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 13 + (i >> 9));
  at::Tensor t = at::from_blob(payload.data(), {static_cast<int64_t>(payload.size())},
                               at::TensorOptions().dtype(c10::ScalarType::Byte))
                     .clone();
  ASSERT_TRUE(testing::InsertNamed(server_->store(), t, npy::DType::kUInt8, "out").ok());
  const uint64_t before = server_->store()->budget().used("cpu");
  ASSERT_TRUE(Map("out", &map).ok());
  EXPECT_EQ(npy::testing::ReadFile(map.path()), FetchAll("out"));
  EXPECT_EQ(server_->store()->budget().used("cpu"), before + payload.size());
  const std::string first_path = map.path();
  ASSERT_TRUE(Map("out", &map).ok());
  EXPECT_EQ(map.path(), first_path);  // once
  grpc::ClientContext ctx;
  Prepare(&ctx);
  TensorRef ref;
  ref.set_handle("out");
  npystream::v1::ReleaseResponse released;
  ASSERT_TRUE(stub_->Release(&ctx, ref, &released).ok());
  EXPECT_FALSE(std::filesystem::exists(first_path));
}

TEST_F(ShmServiceTest, AllocateWriteCommitThenFetch) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  npystream::v1::AllocateRequest req;
  req.mutable_header()->set_name("alloc");
  req.set_dtype("<i4");
  req.add_shape(3);
  req.add_shape(1000);
  npystream::v1::MapResponse map;
  ASSERT_TRUE(stub_->Allocate(&ctx, req, &map).ok());
  EXPECT_EQ(map.info().nbytes(), 12000u);
  {
    std::fstream f(map.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(map.data_offset()));
    for (int32_t i = 0; i < 3000; ++i) f.write(reinterpret_cast<const char*>(&i), 4);
  }
  npystream::v1::MapResponse early;
  EXPECT_EQ(Map("alloc", &early).error_code(), grpc::StatusCode::NOT_FOUND);  // not yet
  grpc::ClientContext commit_ctx;
  Prepare(&commit_ctx);
  TensorRef ref;
  ref.set_handle("alloc");
  TensorInfo info;
  ASSERT_TRUE(stub_->Commit(&commit_ctx, ref, &info).ok());
  EXPECT_EQ(info.dtype(), "<i4");
  const std::string fetched = FetchAll("alloc");
  EXPECT_EQ(fetched, npy::testing::ReadFile(map.path()));
  int32_t last = 0;
  std::memcpy(&last, fetched.data() + fetched.size() - 4, 4);
  EXPECT_EQ(last, 2999);
}

TEST_F(ShmServiceTest, ErrorsArePrecise) {
  npystream::v1::MapResponse map;
  EXPECT_EQ(Map("nope", &map).error_code(), grpc::StatusCode::NOT_FOUND);
  auto allocate = [&](const std::string& dtype, std::vector<int64_t> shape) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    npystream::v1::AllocateRequest req;
    req.set_dtype(dtype);
    for (int64_t d : shape) req.add_shape(d);
    return stub_->Allocate(&ctx, req, &map);
  };
  EXPECT_EQ(allocate("<q9", {1}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(allocate("<f4", {-1}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(allocate("<f4", std::vector<int64_t>(40, 1)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(allocate("<f8", {1 << 30}).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  TensorRef ref;
  ref.set_handle("never");
  TensorInfo info;
  EXPECT_EQ(stub_->Commit(&ctx, ref, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  // The token is checked on the Unix socket too.
  grpc::ClientContext bare;
  npystream::v1::ShmResponse shm;
  EXPECT_EQ(stub_->Shm(&bare, npystream::v1::ShmRequest(), &shm).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext with_token;
  Prepare(&with_token);
  ASSERT_TRUE(stub_->Shm(&with_token, npystream::v1::ShmRequest(), &shm).ok());
  EXPECT_EQ(shm.dir(), root_ + "/tensors");
  struct stat st {};
  ASSERT_EQ(stat(shm.marker_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, shm.marker_inode());
}

TEST(NoShmServiceTest, MapAndAllocateNameTheFlag) {
  auto server = *testing::InProcessServer::Start();
  auto stub = Tensors::NewStub(server->NewChannel());
  grpc::ClientContext ctx;
  npystream::v1::MapRequest req;
  req.set_handle("x");
  npystream::v1::MapResponse map;
  ASSERT_TRUE(
      testing::InsertNamed(server->store(),
                           at::zeros({2}, at::TensorOptions().dtype(c10::ScalarType::Float)),
                           npy::DType::kFloat32, "x")
          .ok());
  grpc::Status s = stub->Map(&ctx, req, &map);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("--shm-dir"), std::string::npos);
}

}  // namespace
}  // namespace npystream::rpc
