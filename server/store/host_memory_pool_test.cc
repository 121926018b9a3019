#include "server/store/host_memory_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace npystream {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Whether the page at `p` is mapped in this process (mincore says ENOMEM
// for an address with no mapping).
bool Mapped(void* p) {
  unsigned char resident = 0;
  return mincore(p, 4096, &resident) == 0 || errno != ENOMEM;
}

HostMemoryPool::Options Limit(uint64_t cache_bytes) {
  HostMemoryPool::Options options;
  options.cache_bytes = cache_bytes;
  return options;
}

TEST(HostMemoryPoolTest, BlockSizesAreWholePagesWithUnderAQuarterSlack) {
  EXPECT_EQ(HostMemoryPool::BlockSize(1), 4096u);
  EXPECT_EQ(HostMemoryPool::BlockSize(4096), 4096u);
  EXPECT_EQ(HostMemoryPool::BlockSize(kMiB), kMiB);
  EXPECT_EQ(HostMemoryPool::BlockSize(kMiB + 1), kMiB + kMiB / 4);
  EXPECT_EQ(HostMemoryPool::BlockSize(kMiB + kMiB / 4 + 1), kMiB + kMiB / 2);
  for (size_t n = 1000; n < size_t{3} << 30; n = n * 13 / 10 + 77) {
    const size_t block = HostMemoryPool::BlockSize(n);
    EXPECT_GE(block, n);
    EXPECT_EQ(block % 4096, 0u);
    if (n >= 16384) {
      EXPECT_LT(block - n, n / 4 + 4096) << n;
    }
  }
}

TEST(HostMemoryPoolTest, AFreedBlockIsReusedForItsSizeClassThenTrimUnmapsIt) {
  auto pool = HostMemoryPool::Create({});
  char* a = static_cast<char*>(pool->Allocate(kMiB));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 4096, 0u);
  std::memset(a, 0x5a, kMiB);
  EXPECT_EQ(pool->in_use_bytes(), kMiB);
  pool->Free(a, kMiB);
  EXPECT_EQ(pool->in_use_bytes(), 0u);
  EXPECT_EQ(pool->cached_bytes(), kMiB);
  // Another size class maps a new block; the same class takes the kept one.
  void* other = pool->Allocate(2 * kMiB);
  EXPECT_NE(other, a);
  EXPECT_EQ(pool->Allocate(kMiB - 100), a);
  EXPECT_EQ(pool->cached_bytes(), 0u);
  pool->Free(a, kMiB - 100);
  pool->Free(other, 2 * kMiB);
  EXPECT_EQ(pool->cached_bytes(), 3 * kMiB);
  EXPECT_TRUE(Mapped(a));
  EXPECT_EQ(pool->Trim(), 3 * kMiB);
  EXPECT_EQ(pool->cached_bytes(), 0u);
  EXPECT_FALSE(Mapped(a));
  EXPECT_FALSE(Mapped(other));
}

TEST(HostMemoryPoolTest, BlocksPastTheCacheLimitAreUnmappedAtOnce) {
  auto pool = HostMemoryPool::Create(Limit(2 * kMiB));
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) blocks.push_back(pool->Allocate(kMiB));
  for (void* b : blocks) pool->Free(b, kMiB);
  EXPECT_EQ(pool->cached_bytes(), 2 * kMiB);
  EXPECT_TRUE(Mapped(blocks[0]));
  EXPECT_TRUE(Mapped(blocks[1]));
  EXPECT_FALSE(Mapped(blocks[2]));
}

TEST(HostMemoryPoolTest, ConcurrentUsersNeverShareABlock) {
  auto pool = HostMemoryPool::Create(Limit(4 * kMiB));
  std::vector<std::thread> threads;
  std::vector<int> bad(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const size_t n = HostMemoryPool::kMinBlockBytes << (i % 4);
        auto* p = static_cast<unsigned char*>(pool->Allocate(n));
        std::memset(p, t, n);
        std::this_thread::yield();
        for (size_t k = 0; k < n; k += 4096) bad[t] += p[k] != t;
        pool->Free(p, n);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
  EXPECT_EQ(pool->in_use_bytes(), 0u);
  EXPECT_LE(pool->cached_bytes(), 4 * kMiB);
}

}  // namespace
}  // namespace npystream
