#include "base/process_tuning.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"

namespace npystream {

std::string TuneProcessForStreaming() {
  return TuneMallocForStreaming() + " " + IgnoreMutexDeadlockChecks();
}

std::string IgnoreMutexDeadlockChecks() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return "mutex_deadlock_checks=off";
}

std::string TuneMallocForStreaming() {
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) {
    return "malloc=environment";
  }
#ifdef M_TRIM_THRESHOLD
  constexpr int kTrim = 64 << 20;
  constexpr int kMmap = 32 << 20;  // glibc's largest allowed on 64-bit
  if (mallopt(M_TRIM_THRESHOLD, kTrim) == 1 && mallopt(M_MMAP_THRESHOLD, kMmap) == 1) {
    return "malloc=tuned trim_threshold=64MiB mmap_threshold=32MiB";
  }
#endif
  return "malloc=default";
}

namespace {

int64_t ResidentBytes() {
  long pages = 0, resident = 0;  // NOLINT(runtime/int): statm's format
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

}  // namespace

int64_t ReleaseFreeMemory() {
  const int64_t before = ResidentBytes();
#ifdef M_TRIM_THRESHOLD
  malloc_trim(0);
#endif
  return before - ResidentBytes();
}

}  // namespace npystream
