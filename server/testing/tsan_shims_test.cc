// The TSan shims in a TSan build, which must order what really is ordered
// and must not blind TSan. tsan_absl.cc: accesses ordered by an absl::Mutex,
// a CondVar wait or a Notification are not reported, while an unguarded race
// still is. tsan_grpc.cc: a client-streaming reactor's state, carried across
// callbacks that gRPC runs on different threads and read in OnDone, is not
// reported (and is, with the shim off), while handlers of concurrent calls
// racing on a global still are. Built only in TSan builds; `make test-tsan`
// runs it.
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/testing/build_dirs.h"

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

// Runs a probe under TSan (the tree's suppressions: third-party code only);
// returns its exit code, or -1 when it did not exit; `output` gets its output.
int RunProbe(const std::string& command, std::string* output) {
  const std::string line = std::string("TSAN_OPTIONS='halt_on_error=1 suppressions=") +
                           ::npystream::testing::SourceDir() + "/tests/tsan.supp' " + command +
                           " 2>&1";
  FILE* probe = popen(line.c_str(), "r");
  if (probe == nullptr) return -1;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), probe)) output->append(buf, n);
  const int status = pclose(probe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

constexpr char kRace[] = "WARNING: ThreadSanitizer: data race";

// tsan_race_probe races on a global beside an absl::Mutex it does lock.
TEST(TsanAbslTest, AnUnguardedRaceIsStillReported) {
  std::string output;
  EXPECT_EQ(RunProbe(NPYSTREAM_RACE_PROBE, &output), 66) << output;
  EXPECT_NE(output.find(kRace), std::string::npos) << output;
}

TEST(TsanGrpcTest, WhatGrpcOrdersIsNotReported) {
  std::string output;
  EXPECT_EQ(RunProbe(std::string(NPYSTREAM_GRPC_PROBE) + " ordered", &output), 0) << output;
  EXPECT_NE(output.find("calls 100 failed 0 done 100"), std::string::npos) << output;
}

// Whether gRPC runs two callbacks of one call on different threads is up to
// its scheduling: a probe that must show a report gets a few runs to do so.
int RunProbeUntilReport(const std::string& command, std::string* output) {
  int code = -1;
  for (int run = 0; run < 5 && code != 66; ++run) {
    output->clear();
    code = RunProbe(command, output);
  }
  return code;
}

TEST(TsanGrpcTest, WithoutTheGrpcShimTheSameCallsAreReported) {
  std::string output;
  EXPECT_EQ(RunProbeUntilReport(
                std::string("NPYSTREAM_TSAN_GRPC_SHIM=off ") + NPYSTREAM_GRPC_PROBE + " ordered",
                &output),
            66)
      << output;
  EXPECT_NE(output.find(kRace), std::string::npos) << output;
}

TEST(TsanGrpcTest, HandlersOfConcurrentCallsRacingAreStillReported) {
  std::string output;
  EXPECT_EQ(RunProbeUntilReport(std::string(NPYSTREAM_GRPC_PROBE) + " racy", &output), 66)
      << output;
  EXPECT_NE(output.find(kRace), std::string::npos) << output;
  EXPECT_NE(output.find("Reactor"), std::string::npos) << output;  // in the handler
}

}  // namespace
