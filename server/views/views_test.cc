// Views of host tensors two ways: the HostViewReader (gathered from the
// tensor's memory) and TorchView (LibTorch, as GPU tensors are computed),
// compared byte for byte over random views of every dtype. numpy is the
// reference in tests/test_views.py.
#include "server/views/views.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/npy/npy_writer.h"
#include "server/store/torch_dtype.h"
#include "server/testing/store_testing.h"
#include "server/views/view_kernels.h"

namespace npystream::views {
namespace {

using npy::DType;

// The payload of `source`, read in pieces of `piece` bytes (a piece may
// start inside an element, as an HTTP Range does).
std::string ReadAll(NpySource& source, size_t piece) {
  std::string out;
  const uint64_t n = source.info.nbytes;
  while (out.size() < n) {
    absl::StatusOr<HostChunk> chunk;
    source.reader->Read(out.size(), std::min<uint64_t>(piece, n - out.size()),
                        [&](absl::StatusOr<HostChunk> c) { chunk = std::move(c); });
    EXPECT_TRUE(chunk.ok()) << chunk.status();
    if (!chunk.ok() || chunk->size == 0) break;
    out.append(chunk->data, chunk->size);
  }
  return out;
}

class ViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *TensorStore::Create(TensorStore::Options{});
    transfer_ = NewCpuTransfer();
    Views::Options options{transfer_.get(), store_.get(), nullptr, false};
    host_ = std::make_unique<Views>(options);
    options.torch_for_host = true;
    torch_ = std::make_unique<Views>(options);
  }

  // A tensor of `dtype` and `shape` with random bytes (ints, bool 0/1) or
  // random finite values (floats, complex).
  std::shared_ptr<const StoredTensor> RandomTensor(DType dtype, const std::vector<int64_t>& shape) {
    npy::ArrayMeta meta{dtype, shape, false};
    const int64_t n = static_cast<int64_t>(meta.NumElements());
    at::Tensor t;
    if (dtype == DType::kBool) {
      t = at::randint(0, 2, shape, at::kBool);
    } else if (dtype == DType::kFloat16 || dtype == DType::kFloat32 || dtype == DType::kFloat64 ||
               dtype == DType::kComplex64 || dtype == DType::kComplex128) {
      t = (at::randn(shape, at::kFloat) * 300).to(StorageTypeOf(dtype));
    } else {
      t = at::empty(shape, StorageTypeOf(dtype));
      auto* p = static_cast<unsigned char*>(t.data_ptr());
      for (int64_t i = 0; i < n * npy::ItemSize(dtype); ++i) p[i] = rng_() & 0xff;
    }
    return *store_->Insert(t, dtype, {});
  }

  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  std::string RandomIndex(const std::vector<int64_t>& shape) {
    std::vector<std::string> items;
    const bool ellipsis = Uniform(0, 3) == 0;
    const size_t used = shape.empty() ? 0 : Uniform(0, shape.size());
    const size_t ellipsis_at = Uniform(0, used);
    for (size_t d = 0; d < used; ++d) {
      if (ellipsis && d == ellipsis_at) items.push_back("...");
      const int64_t n = shape[d];
      auto bound = [&]() -> std::string {
        return Uniform(0, 3) == 0 ? "" : absl::StrCat(Uniform(-n - 2, n + 2));
      };
      if (n > 0 && Uniform(0, 3) == 0) {
        items.push_back(absl::StrCat(Uniform(-n, n - 1)));
      } else {
        int64_t step = Uniform(-3, 3);
        if (step == 0) step = 1;
        items.push_back(absl::StrCat(bound(), ":", bound(), Uniform(0, 1) ? ":" : "",
                                     Uniform(0, 2) ? absl::StrCat(step) : ""));
      }
    }
    if (ellipsis && ellipsis_at == used) items.push_back("...");
    // With the ellipsis placed first, the items after it index the last axes
    // instead: still valid, as they are no more than the axes.
    return absl::StrJoin(items, ", ");
  }

  std::mt19937_64 rng_{42};
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<Transfer> transfer_;
  std::unique_ptr<Views> host_;
  std::unique_ptr<Views> torch_;
};

// Compares two payloads of `dtype`: exactly, or (pooled) as numbers within
// the dtype's rounding of a double sum.
void ExpectSamePayload(const std::string& a, const std::string& b, DType dtype, bool pooled,
                       const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  if (!pooled) {
    EXPECT_TRUE(a == b) << what;
    return;
  }
  const size_t isz = npy::ItemSize(dtype);
  for (size_t i = 0; i < a.size() / isz; ++i) {
    double x = 0, y = 0;
    if (dtype == DType::kFloat16) {
      uint16_t hx, hy;
      std::memcpy(&hx, a.data() + 2 * i, 2);
      std::memcpy(&hy, b.data() + 2 * i, 2);
      x = HalfToFloat(hx);
      y = HalfToFloat(hy);
    } else if (dtype == DType::kFloat32) {
      float fx, fy;
      std::memcpy(&fx, a.data() + 4 * i, 4);
      std::memcpy(&fy, b.data() + 4 * i, 4);
      x = fx;
      y = fy;
    } else {
      std::memcpy(&x, a.data() + 8 * i, 8);
      std::memcpy(&y, b.data() + 8 * i, 8);
    }
    if (x == y || (std::isnan(x) && std::isnan(y))) continue;  // inf - inf: NaN in both
    const double eps = dtype == DType::kFloat16 ? 1e-3 : dtype == DType::kFloat32 ? 1e-6 : 1e-12;
    ASSERT_NEAR(x, y, eps * std::max(1.0, std::fabs(x))) << what << " element " << i;
  }
}

TEST_F(ViewsTest, RandomViewsAgreeWithLibTorch) {
  int checked = 0, pooled = 0, cast = 0;
  for (int round = 0; round < 1500; ++round) {
    const auto dtype = static_cast<DType>(Uniform(0, npy::kNumDTypes - 1));
    std::vector<int64_t> shape;
    const int ndim = Uniform(0, 4);
    for (int d = 0; d < ndim; ++d)
      shape.push_back(Uniform(0, 3) == 0 ? Uniform(0, 2) : Uniform(1, 9));
    auto tensor = RandomTensor(dtype, shape);
    ViewRequest request;
    request.index = RandomIndex(shape);
    if (Uniform(0, 1)) {
      const auto to = static_cast<DType>(Uniform(0, npy::kNumDTypes - 1));
      if (CanCastSameKind(dtype, to)) request.dtype = npy::Descr(to);
    }
    if (Uniform(0, 2) == 0) {
      request.pool = static_cast<uint32_t>(Uniform(2, 3));
      // A pool needs a float view: cast to one where numpy allows.
      const auto to = static_cast<DType>(Uniform(9, 11));  // float16, float32, float64
      if (Uniform(0, 3) > 0 && CanCastSameKind(dtype, to)) request.dtype = npy::Descr(to);
    }
    const std::string what =
        absl::StrCat(npy::Name(dtype), " (", absl::StrJoin(shape, ","), ") [", request.index, "] ",
                     request.dtype, " pool ", request.pool);
    auto a = host_->Open(tensor, request);
    auto b = torch_->Open(tensor, request);
    ASSERT_EQ(a.ok(), b.ok()) << what << ": " << a.status() << " / " << b.status();
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << what;
      continue;
    }
    EXPECT_EQ(a->npy_header, b->npy_header) << what;
    EXPECT_EQ(a->npy_header, npy::WriteHeader(a->info.meta)) << what;
    EXPECT_EQ(a->info.handle, tensor->info().handle);
    EXPECT_EQ(b->info.handle, tensor->info().handle);
    EXPECT_EQ(a->info.npy_bytes, a->npy_header.size() + a->info.nbytes);
    const bool is_pooled = request.pool > 1;
    ExpectSamePayload(ReadAll(*a, 1 << 20), ReadAll(*b, 1 << 20), a->info.meta.dtype, is_pooled,
                      what);
    ++checked;
    pooled += is_pooled;
    cast += !request.dtype.empty();
  }
  EXPECT_GT(checked, 700);
  EXPECT_GT(pooled, 20);
  EXPECT_GT(cast, 100);
}

TEST_F(ViewsTest, PiecesStartingInsideAnElementReadTheSameBytes) {
  auto tensor = RandomTensor(DType::kComplex128, {5, 7});
  ViewRequest request{"::-1, 1::2", "", 0};
  auto whole = host_->Open(tensor, request);
  ASSERT_TRUE(whole.ok());
  const std::string expected = ReadAll(*whole, 1 << 20);
  for (size_t piece : {1, 3, 7, 16, 17, 100}) {
    auto again = host_->Open(tensor, request);
    EXPECT_EQ(ReadAll(*again, piece), expected) << piece;
  }
}

TEST_F(ViewsTest, ContiguousViewsAreTheTensorsOwnMemory) {
  auto tensor = RandomTensor(DType::kFloat32, {64, 1024});
  auto source = host_->Open(tensor, ViewRequest{"16:32", "", 0});
  ASSERT_TRUE(source.ok());
  absl::StatusOr<HostChunk> chunk;
  source->reader->Read(0, 4096, [&](absl::StatusOr<HostChunk> c) { chunk = std::move(c); });
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->data, tensor->host_data() + 16 * 1024 * 4);  // no copy
}

TEST_F(ViewsTest, WholeRequestIsTheStoredTensor) {
  auto tensor = RandomTensor(DType::kInt16, {3, 4});
  auto source = host_->Open(tensor, ViewRequest{});
  ASSERT_TRUE(source.ok());
  EXPECT_EQ(source->npy_header, tensor->npy_header());
  EXPECT_EQ(source->info.nbytes, tensor->info().nbytes);
  EXPECT_EQ(ReadAll(*source, 5), std::string(tensor->host_data(), tensor->info().nbytes));
}

TEST_F(ViewsTest, TheTensorIsNeverChanged) {
  auto tensor = RandomTensor(DType::kFloat64, {6, 6});
  const std::string before(tensor->host_data(), tensor->info().nbytes);
  for (auto* views : {host_.get(), torch_.get()}) {
    auto source = views->Open(tensor, ViewRequest{"::-1", "<f2", 2});
    ASSERT_TRUE(source.ok());
    ReadAll(*source, 1 << 20);
  }
  EXPECT_EQ(std::string(tensor->host_data(), tensor->info().nbytes), before);
}

TEST(ViewKernelsTest, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // the tie rounds to even: infinity
  EXPECT_EQ(FloatToHalf(-1e9f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);         // smallest normal
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(FloatToHalf(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(FloatToHalf(NAN) & 0x03ff, 0);
  EXPECT_EQ(DoubleToHalf(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3c01);  // once
  EXPECT_EQ(DoubleToHalf(-0.0), 0x8000);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << h;  // every half survives the round trip
    ASSERT_EQ(DoubleToHalf(f), h) << h;
  }
}

}  // namespace
}  // namespace npystream::views
