#include "base/process_tuning.h"

#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace npystream {
namespace {

// ASan and TSan bring their own allocator: glibc's malloc tuning does not
// apply to them (abseil's macros see both GCC's and clang's sanitizers).
#if defined(ABSL_HAVE_ADDRESS_SANITIZER) || defined(ABSL_HAVE_THREAD_SANITIZER)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif

long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// What a gRPC receive loop does: many mid-sized buffers, filled, freed,
// again. Returns the page faults of rounds 2..n (round 1 warms the heap).
long FaultsOfRepeatedBuffers() {
  constexpr int kBlocks = 256;
  constexpr size_t kBlock = 64 << 10;  // under the default mmap threshold
  long faults = 0;
  for (int round = 0; round < 10; ++round) {
    const long before = MinorFaults();
    std::vector<char*> blocks;
    for (int i = 0; i < kBlocks; ++i) {
      char* p = static_cast<char*>(std::malloc(kBlock));
      std::memset(p, round, kBlock);
      blocks.push_back(p);
    }
    for (char* p : blocks) std::free(p);
    if (round > 0) faults += MinorFaults() - before;
  }
  return faults;
}

TEST(MallocTuningTest, FreedBuffersAreReusedWithoutPageFaults) {
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("MALLOC_MMAP_THRESHOLD_")) {
    GTEST_SKIP() << "malloc is tuned by the environment";
  }
  if (kSanitizerAllocator) GTEST_SKIP() << "a sanitizer's allocator replaces glibc's malloc";
  const long untuned = FaultsOfRepeatedBuffers();
  EXPECT_EQ(TuneMallocForStreaming().rfind("malloc=tuned", 0), 0u);
  const long tuned = FaultsOfRepeatedBuffers();
  // Untuned, each round gives its 16 MiB back and faults ~4096 pages in again.
  EXPECT_GT(untuned, 9 * 1000);
  EXPECT_LT(tuned, untuned / 10) << "untuned " << untuned;
  std::printf("minor page faults over 9 rounds: untuned %ld, tuned %ld\n", untuned, tuned);
}

// Takes two mutexes in both orders: a lock-order cycle, harmless here (one
// thread) but what abseil's deadlock detection reports.
void LockBothOrders() {
  absl::Mutex a, b;
  a.Lock();
  b.Lock();
  b.Unlock();
  a.Unlock();
  b.Lock();
  a.Lock();
  a.Unlock();
  b.Unlock();
}

TEST(ProcessTuningDeathTest, MutexDeadlockChecksAreOff) {
#ifdef ABSL_HAVE_THREAD_SANITIZER
  GTEST_SKIP() << "ThreadSanitizer checks lock order itself and reports the deliberate cycle";
#endif
  // Precondition: this abseil checks lock order by default (Debian's is
  // built without NDEBUG); where it does not, there is nothing to turn off.
  bool checks = true;
  EXPECT_EXIT(
      {
        LockBothOrders();
        std::exit(0);
      },
      [&](int status) {
        checks = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return true;
      },
      "");
  if (!checks) GTEST_SKIP() << "this abseil does not check lock order by default";
  EXPECT_EXIT(
      {
        EXPECT_EQ(IgnoreMutexDeadlockChecks(), "mutex_deadlock_checks=off");
        LockBothOrders();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace npystream
