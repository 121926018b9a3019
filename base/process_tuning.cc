#include "base/process_tuning.h"

#include <malloc.h>

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

}  // namespace npystream
