#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>

#include "gtest/gtest.h"
#include "server/testing/store_testing.h"
#include "server/transfer/cuda_probe.h"
#include "server/transfer/transfer.h"

namespace npystream {
namespace {

TEST(CpuTransferTest, ChunksAreViewsThatPinTheTensor) {
  TensorStore::Options options;
  auto store = *TensorStore::Create(options);
  at::Tensor t = at::arange(1000, at::TensorOptions().dtype(c10::ScalarType::Float));
  auto stored = testing::InsertNamed(store.get(), t, npy::DType::kFloat32, "a", 0);
  ASSERT_TRUE(stored.ok());
  auto reader = NewCpuTransfer()->OpenReader(*stored);
  ASSERT_TRUE(reader.ok());
  HostChunk chunk;
  (*reader)->Read(400, 800, [&](absl::StatusOr<HostChunk> c) {
    ASSERT_TRUE(c.ok());
    chunk = *c;
  });
  stored->reset();
  reader->reset();
  ASSERT_TRUE(store->Release("a").ok());
  // Only the chunk holds the tensor now; its bytes are elements 100..299.
  EXPECT_EQ(store->resident_count(), 1);
  EXPECT_EQ(reinterpret_cast<const float*>(chunk.data)[0], 100.0f);
  EXPECT_EQ(reinterpret_cast<const float*>(chunk.data)[199], 299.0f);
  chunk.owner.reset();
  EXPECT_EQ(store->resident_count(), 0);
}

TEST(CpuTransferTest, RangePastTheEndIsOutOfRange) {
  auto store = *TensorStore::Create({});
  auto stored = *testing::InsertNamed(
      store.get(), at::arange(4, at::TensorOptions().dtype(c10::ScalarType::Float)),
      npy::DType::kFloat32, "", 0);
  auto reader = *NewCpuTransfer()->OpenReader(stored);
  absl::Status status;
  reader->Read(8, 9, [&](absl::StatusOr<HostChunk> c) { status = c.status(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
}

TEST(CudaProbeTest, ReportsAReasonWhenThereIsNoDevice) {
  CudaProbe probe = ProbeCuda();
  if (probe.device_count > 0) GTEST_SKIP() << "a CUDA device exists: " << probe.description;
  EXPECT_NE(probe.description.find("no CUDA device"), std::string::npos) << probe.description;
}

}  // namespace
}  // namespace npystream
