// The daemon in-process: Infer and Subscribe over real gRPC against a local
// TorchScript run of the same model, the Env seams, drain and secrets.
#include "server/daemon.h"

#include <torch/script.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "npystream/v1/inference.grpc.pb.h"
#include "server/npy/npy_parser.h"
#include "server/npy/npy_writer.h"
#include "server/testing/build_dirs.h"
#include "server/testing/fake_copy_device.h"
#include "server/testing/in_process_server.h"

namespace npystream {
namespace {

const std::string kRepository = ::npystream::testing::BuildDir() + "/models";

// A deterministic [2, 1, 28, 28] float32 input.
at::Tensor DigitInput() {
  return torch::sin(torch::arange(2 * 28 * 28, torch::kFloat32) * 0.37f).reshape({2, 1, 28, 28});
}

std::string NpyOf(const at::Tensor& t) {
  npy::ArrayMeta meta;
  meta.dtype = npy::DType::kFloat32;
  meta.shape = t.sizes().vec();
  std::string out = npy::WriteHeader(meta);
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

// The payload of a .npy as floats, checking the header says float32 `shape`.
std::vector<float> FloatsOf(const std::string& npy, const std::vector<int64_t>& shape) {
  auto size = npy::PeekHeaderSize(npy);
  EXPECT_TRUE(size.ok()) << size.status();
  auto meta = npy::ParseHeader(npy.substr(0, *size));
  EXPECT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->dtype, npy::DType::kFloat32);
  EXPECT_EQ(meta->shape, shape);
  std::vector<float> out((npy.size() - *size) / sizeof(float));
  std::memcpy(out.data(), npy.data() + *size, out.size() * sizeof(float));
  return out;
}

// forward() of the demo model, run here by LibTorch.
struct LocalRun {
  std::vector<float> logits;
};
LocalRun RunLocally(const at::Tensor& x) {
  torch::jit::Module m = torch::jit::load(kRepository + "/demo/model.pt");
  m.eval();
  torch::NoGradGuard no_grad;
  LocalRun run;
  at::Tensor logits = m.forward({x}).toTensor().contiguous();
  run.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  return run;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << i;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::InProcessServer::Options options;
    options.model_repository = kRepository;
    auto server = testing::InProcessServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Inference::NewStub(server_->NewChannel());
  }

  v1::InferResponse Infer(const at::Tensor& x, const std::vector<std::string>& capture) {
    v1::InferRequest request;
    request.set_model("demo");
    request.add_inputs()->set_npy(NpyOf(x));
    for (const auto& c : capture) request.add_capture(c);
    request.set_inline_max_bytes(1 << 20);
    v1::InferResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->Infer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::unique_ptr<testing::InProcessServer> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(DaemonTest, ListsTheBuildsModels) {
  v1::ListModelsResponse listing;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &listing).ok());
  ASSERT_EQ(listing.models_size(), 2);  // build/models: demo and resnet18
  EXPECT_EQ(listing.models(0).name(), "demo");
  EXPECT_EQ(listing.models(0).device(), "cpu");
  EXPECT_EQ(listing.models(0).layers(0), "conv1");
  EXPECT_EQ(listing.models(1).name(), "resnet18");
  EXPECT_EQ(listing.models(1).inputs(0).shape_size(), 4);
  EXPECT_EQ(listing.models(1).layers(4), "layer1");
}

TEST_F(DaemonTest, InferMatchesALocalTorchScriptRun) {
  const at::Tensor x = DigitInput();
  const v1::InferResponse response = Infer(x, {"fc"});
  ASSERT_EQ(response.output_npy_size(), 1);
  ASSERT_EQ(response.activation_npy_size(), 1);
  const LocalRun local = RunLocally(x);
  ExpectClose(FloatsOf(response.output_npy(0), {2, 10}), local.logits);
  // fc is the last layer: its activation is the output.
  ExpectClose(FloatsOf(response.activation_npy(0), {2, 10}), local.logits);
}

TEST_F(DaemonTest, SubscribeDeliversTheActivationOfAnInfer) {
  const at::Tensor x = DigitInput();
  grpc::ClientContext context;
  v1::SubscribeRequest request;
  request.set_model("demo");
  request.add_layers("fc");
  auto reader = stub_->Subscribe(&context, request);
  std::string npy;
  std::atomic<bool> got{false};
  std::thread read([&] {
    v1::FetchResponse part;
    uint64_t want = 0;
    while (reader->Read(&part)) {
      if (part.has_info()) want = part.info().npy_bytes();
      npy += part.data();
      if (want > 0 && npy.size() >= want) break;
    }
    got = true;
  });
  // The subscription is registered asynchronously: infer until a value comes.
  for (int i = 0; i < 200 && !got.load(); ++i) {
    Infer(x, {});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  context.TryCancel();
  read.join();
  ExpectClose(FloatsOf(npy, {2, 10}), RunLocally(x).logits);
}

// The demo model with dynamic batching: 64 concurrent one-row Infers share
// forward passes, and each result equals that row run alone.
TEST(DaemonBatchingTest, ConcurrentInfersAreBatchedAndEachGetsItsOwnRow) {
  const std::string repo = ::testing::TempDir() + "/batching_repo";
  std::filesystem::create_directories(repo + "/demo");
  std::filesystem::copy_file(kRepository + "/demo/model.pt", repo + "/demo/model.pt",
                             std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream config(repo + "/demo/config.json");
    config << R"({"dynamic_batching": {"max_batch": 64, "max_queue_delay_us": 20000}})";
  }
  testing::InProcessServer::Options options;
  options.model_repository = repo;
  auto server = testing::InProcessServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const at::Tensor all =
      torch::cos(torch::arange(64 * 28 * 28, torch::kFloat32) * 0.11f).reshape({64, 1, 28, 28});
  std::vector<std::vector<float>> got(64);
  std::vector<std::thread> threads;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&, i] {
      auto stub = v1::Inference::NewStub((*server)->NewChannel());
      v1::InferRequest request;
      request.set_model("demo");
      request.add_inputs()->set_npy(NpyOf(all.narrow(0, i, 1).contiguous()));
      request.set_inline_max_bytes(1 << 20);
      v1::InferResponse response;
      grpc::ClientContext context;
      if (stub->Infer(&context, request, &response).ok() && response.output_npy_size() == 1) {
        got[i] = FloatsOf(response.output_npy(0), {1, 10});
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 64; ++i) {
    ExpectClose(got[i], RunLocally(all.narrow(0, i, 1).contiguous()).logits);
  }
  // Some forward pass took more than one row.
  const std::string scrape = (*server)->daemon()->metrics()->Scrape();
  const std::string one_row = "npystream_batch_size_bucket{model=\"demo\",le=\"1\"} ";
  const std::string total = "npystream_batch_size_count{model=\"demo\"} ";
  auto value = [&](const std::string& key) {
    const size_t at = scrape.find(key);
    return at == std::string::npos ? -1.0 : std::stod(scrape.substr(at + key.size()));
  };
  EXPECT_GT(value(total), 0);
  EXPECT_LT(value(total), 64) << "every request ran alone";
  EXPECT_LT(value(one_row), value(total));
}

TEST_F(DaemonTest, DrainRefusesNewCallsAndEndsClean) {
  EXPECT_TRUE(server_->daemon()->Drain(absl::Seconds(2)));
  EXPECT_TRUE(server_->daemon()->Drain(absl::Seconds(2)));  // idempotent
  v1::ListModelsResponse listing;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  EXPECT_FALSE(stub_->ListModels(&context, v1::ListModelsRequest(), &listing).ok());
}

TEST(DaemonEnvTest, AnAbsentExplicitDeviceFailsAtCreateNamingTheFlag) {
  DaemonConfig config;
  config.device = "cuda:0";
  DaemonEnv env;
  env.probe_cuda = [] { return CudaProbe{0, "no CUDA-capable device is detected"}; };
  auto daemon = Daemon::Create(config, std::move(env));
  ASSERT_EQ(daemon.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(daemon.status().message().find("--device cuda:0"), absl::string_view::npos);
  EXPECT_NE(daemon.status().message().find("no CUDA-capable"), absl::string_view::npos);
}

TEST(DaemonEnvTest, CudaDevicesGetAPinnedRingThroughTheCopyDeviceFactory) {
  DaemonConfig config;
  config.staging_bytes = 8 << 20;
  config.staging_chunk = 1 << 20;
  DaemonEnv env;
  env.probe_cuda = [] { return CudaProbe{2, "two fakes"}; };
  env.torch_cuda_devices = [] { return 2; };
  std::vector<int> made;
  env.new_copy_device = [&made](int index,
                                int streams) -> absl::StatusOr<std::unique_ptr<CopyDevice>> {
    made.push_back(index);
    return std::unique_ptr<CopyDevice>(new FakeCopyDevice(streams));
  };
  auto daemon = Daemon::Create(config, std::move(env));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ((*daemon)->devices().default_device(), "cuda:0");
  EXPECT_EQ((*daemon)->devices().cuda_device_count(), 2);
  EXPECT_EQ(made, (std::vector<int>{0, 1}));
  // Two rings of 8 MiB, all free.
  EXPECT_NE((*daemon)->metrics()->Scrape().find("npystream_staging_ring_free_bytes 16777216"),
            std::string::npos);
}

TEST(DaemonEnvTest, DeviceCpuIgnoresGpus) {
  DaemonConfig config;
  config.device = "cpu";
  DaemonEnv env;
  env.probe_cuda = [] { return CudaProbe{1, "one fake"}; };
  env.torch_cuda_devices = [] { return 1; };
  env.new_copy_device = [](int, int) -> absl::StatusOr<std::unique_ptr<CopyDevice>> {
    return absl::InternalError("must not be called");
  };
  auto daemon = Daemon::Create(config, std::move(env));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ((*daemon)->devices().default_device(), "cpu");
  EXPECT_FALSE((*daemon)->devices().uses_cuda());
}

TEST(DaemonEnvTest, UnreadableSecretsNameTheirFlag) {
  DaemonConfig config;
  config.auth_token_file = "/nonexistent/token";
  auto daemon = Daemon::Create(config);
  ASSERT_EQ(daemon.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(daemon.status().message().find("--auth-token-file"), absl::string_view::npos);

  config = DaemonConfig();
  config.tls_cert = "/nonexistent/cert.pem";
  daemon = Daemon::Create(config);
  ASSERT_EQ(daemon.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(daemon.status().message().find("--tls"), absl::string_view::npos);
}

TEST(DaemonEnvTest, TheTokenGuardsGrpc) {
  const std::string path = ::testing::TempDir() + "/daemon_test_token";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("s3cret\nignored second line\n", f);
  std::fclose(f);
  testing::InProcessServer::Options options;
  options.config.auth_token_file = path;
  auto server = testing::InProcessServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Inference::NewStub((*server)->NewChannel());
  v1::ListModelsResponse listing;
  grpc::ClientContext without;
  EXPECT_EQ(stub->ListModels(&without, v1::ListModelsRequest(), &listing).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext with;
  with.AddMetadata("authorization", "Bearer s3cret");
  EXPECT_TRUE(stub->ListModels(&with, v1::ListModelsRequest(), &listing).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace npystream
