// OipService in-process, over real gRPC: the hand-framed ModelInfer (raw
// inputs read from the request's slices, raw outputs as slices over tensor
// memory) against npystream's own Infer and a local TorchScript run. Also
// run under ASan + UBSan by `make test`.
#include "server/rpc/oip_service.h"

#include <torch/script.h>

#include <cstring>

#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/testing/build_dirs.h"
#include "server/testing/in_process_server.h"

namespace npystream {
namespace {

const std::string kRepository = ::npystream::testing::BuildDir() + "/models";

class OipServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::InProcessServer::Options options;
    options.model_repository = kRepository;
    auto server = testing::InProcessServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = inference::GRPCInferenceService::NewStub(server_->NewChannel());
  }

  std::unique_ptr<testing::InProcessServer> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

std::vector<float> Local(const at::Tensor& x) {
  torch::jit::Module m = torch::jit::load(kRepository + "/demo/model.pt");
  torch::NoGradGuard no_grad;
  at::Tensor y = m.forward({x}).toTensor().contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

TEST_F(OipServiceTest, LargeBf16AndFp32RequestsMatchALocalRun) {
  // 256 rows: the request spans many slices, so elements straddle them.
  const at::Tensor x =
      torch::sin(torch::arange(256 * 28 * 28, torch::kFloat32) * 0.37f).reshape({256, 1, 28, 28});
  const at::Tensor x_bf16 = x.to(torch::kBFloat16);
  for (const bool bf16 : {false, true}) {
    inference::ModelInferRequest request;
    request.set_model_name("demo");
    request.set_id(bf16 ? "bf16" : "fp32");
    auto* in = request.add_inputs();
    in->set_name("x");
    in->set_datatype(bf16 ? "BF16" : "FP32");
    for (int64_t d : x.sizes()) in->add_shape(d);
    const at::Tensor& sent = bf16 ? x_bf16 : x;
    request.add_raw_input_contents(static_cast<const char*>(sent.data_ptr()), sent.nbytes());
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->ModelInfer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.id(), request.id());
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    ASSERT_EQ(response.raw_output_contents_size(), 1);
    const std::string& raw = response.raw_output_contents(0);
    ASSERT_EQ(raw.size(), 256u * 10 * sizeof(float));
    std::vector<float> got(256 * 10);
    std::memcpy(got.data(), raw.data(), raw.size());
    const std::vector<float> want = Local(bf16 ? x_bf16.to(torch::kFloat32) : x);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << i;
  }
}

TEST_F(OipServiceTest, MalformedRequestsAreRefusedAndTheServerGoesOn) {
  inference::ModelInferRequest request;
  request.set_model_name("demo");
  auto* in = request.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  for (int64_t d : {1, 1, 28, 28}) in->add_shape(d);
  request.add_raw_input_contents(std::string(28 * 28 * 4 - 2, '\0'));  // two bytes short
  inference::ModelInferResponse response;
  grpc::ClientContext c1;
  grpc::Status status = stub_->ModelInfer(&c1, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "input 'x': raw_input_contents[0] holds 3134 bytes; the shape needs 3136");
  request.set_raw_input_contents(0, std::string(28 * 28 * 4, '\0'));
  grpc::ClientContext c2;
  status = stub_->ModelInfer(&c2, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.raw_output_contents(0).size(), 40u);
}

}  // namespace
}  // namespace npystream
