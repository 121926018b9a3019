// The CUDA CopyDevice on a real GPU, through the same ring logic the daemon
// uses. Built whenever the toolkit is found; skips (naming why) without a
// device.
#include <cuda_runtime_api.h>

#include <random>

#include "gtest/gtest.h"
#include "server/testing/transfer_testing.h"
#include "server/transfer/copy_device.h"
#include "server/transfer/cuda_probe.h"
#include "server/transfer/device_reader.h"
#include "server/transfer/device_transfer.h"
#include "server/transfer/device_writer.h"

namespace npystream {
namespace {

constexpr size_t kSlot = 1 << 20;

class CudaCopyDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const CudaProbe probe = ProbeCuda();
    if (probe.device_count == 0) GTEST_SKIP() << "no CUDA device: " << probe.description;
    auto device = NewCudaCopyDevice(0, 4);
    ASSERT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    StagingRing::Options o;
    o.ring_bytes = 16 * kSlot;
    o.slot_bytes = kSlot;
    o.device = device_.get();
    ring_ = *StagingRing::Create(o);
  }

  void TearDown() override {
    if (gpu_ != nullptr) cudaFree(gpu_);
  }

  char* Gpu(size_t n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&gpu_), n), cudaSuccess);
    return gpu_;
  }

  std::string Read(const char* src, size_t n) {
    auto reader = NewDeviceReader(ring_, device_.get(), src, n, nullptr, 8, nullptr);
    return testing::ReadAll(reader.get(), n, n, /*hold=*/0);
  }

  std::unique_ptr<CopyDevice> device_;
  std::shared_ptr<StagingRing> ring_;
  char* gpu_ = nullptr;
};

TEST_F(CudaCopyDeviceTest, PutThenFetchThroughTheRingIsByteIdentical) {
  const size_t n = 64 * kSlot + 12345;
  std::string src(n, '\0');
  std::mt19937 rng(1);
  for (auto& c : src) c = static_cast<char>(rng());
  char* gpu = Gpu(n);
  auto writer = NewDeviceWriter(ring_, device_.get(), gpu, n, nullptr, nullptr);
  ASSERT_TRUE(testing::WriteAll(writer.get(), src, 3 * kSlot + 7).ok());
  std::string check(n, '\0');
  ASSERT_EQ(cudaMemcpy(check.data(), gpu, n, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(check == src);
  EXPECT_TRUE(Read(gpu, n) == src);
  EXPECT_EQ(ring_->free_slots(), ring_->slot_count());
}

// LibTorch computes on the legacy default stream; a fetch must see the
// result of work queued there even though it copies on its own streams.
TEST_F(CudaCopyDeviceTest, CopiesWaitForWorkQueuedOnTheDefaultStream) {
  const size_t n = 256 * kSlot;
  char* gpu = Gpu(n);
  for (int value = 1; value <= 20; ++value) {
    ASSERT_EQ(cudaMemsetAsync(gpu, value, n, cudaStreamLegacy), cudaSuccess);
  }
  const std::string got = Read(gpu, n);
  EXPECT_EQ(got.find_first_not_of('\x14'), std::string::npos);
}

}  // namespace
}  // namespace npystream
