// The TSan shim (tsan_absl.cc) in a TSan build: accesses ordered by an
// absl::Mutex, a CondVar wait or a Notification are not reported, while an
// unguarded race still is (the shim must not blind TSan). Built only in
// TSan builds; `make test-tsan` runs it.
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace {

TEST(TsanAbslTest, MutexCondVarAndNotificationOrderMemory) {
  absl::Mutex mu;
  absl::CondVar cv;
  int guarded = 0;  // under mu
  bool ready = false;
  int published = 0;  // written before Notify, read after the wait
  absl::Notification done;
  std::thread writer([&] {
    for (int i = 0; i < 1000; ++i) {
      absl::MutexLock lock(&mu);
      ++guarded;
    }
    {
      absl::MutexLock lock(&mu);
      ready = true;
      cv.Signal();
    }
    published = 42;
    done.Notify();
  });
  {
    absl::MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
    EXPECT_EQ(guarded, 1000);
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](bool* r) { return *r; }, &ready));
  }
  done.WaitForNotification();
  EXPECT_EQ(published, 42);
  writer.join();
}

// tsan_race_probe races on a global beside an absl::Mutex it does lock.
TEST(TsanAbslTest, AnUnguardedRaceIsStillReported) {
  const std::string command =
      std::string("TSAN_OPTIONS=halt_on_error=1 ") + NPYSTREAM_RACE_PROBE + " 2>&1";
  FILE* probe = popen(command.c_str(), "r");
  ASSERT_NE(probe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), probe)) output.append(buf, n);
  const int status = pclose(probe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 66) << output;
  EXPECT_NE(output.find("WARNING: ThreadSanitizer: data race"), std::string::npos) << output;
}

}  // namespace
