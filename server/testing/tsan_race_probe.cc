// A deliberate data race, for tsan_absl_test: in a TSan build that links the
// abseil shim, running this must still produce a TSan report (exit 66).
#include <cstdio>
#include <thread>

#include "absl/synchronization/mutex.h"

int racy = 0;

int main() {
  absl::Mutex mu;  // the shim is linked and in use, but does not guard `racy`
  std::thread other([&mu] {
    absl::MutexLock lock(&mu);
    racy = 1;
  });
  racy = 2;
  other.join();
  std::printf("%d\n", racy);
  return 0;
}
