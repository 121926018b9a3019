#include "server/common/periodic_runner.h"

#include <atomic>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(PeriodicRunnerTest, RunsEachTaskAtItsPeriodUntilStopped) {
  std::atomic<int> fast{0}, slow{0};
  PeriodicRunner runner;
  runner.Add("fast", absl::Milliseconds(10), [&] { ++fast; });
  runner.Add("slow", absl::Seconds(100), [&] { ++slow; });
  runner.Start();
  for (int i = 0; i < 500 && fast.load() < 5; ++i) absl::SleepFor(absl::Milliseconds(10));
  runner.Stop();
  const int after_stop = fast.load();
  EXPECT_GE(after_stop, 5);
  EXPECT_EQ(slow.load(), 0);  // first run is one period after Start
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(fast.load(), after_stop);
}

TEST(PeriodicRunnerTest, StopReturnsPromptlyWhileWaiting) {
  PeriodicRunner runner;
  runner.Add("never", absl::Hours(1), [] {});
  runner.Start();
  const absl::Time start = absl::Now();
  runner.Stop();
  runner.Stop();  // idempotent
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace npystream
