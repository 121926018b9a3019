// FakeClock: a Clock for tests.
#ifndef NPYSTREAM_SERVER_TESTING_FAKE_CLOCK_H_
#define NPYSTREAM_SERVER_TESTING_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "server/common/clock.h"

namespace npystream {

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowUnixMs() override { return now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TESTING_FAKE_CLOCK_H_
