// Clock: the source of wall time, passed in so tests can use a fake.
#ifndef NPYSTREAM_SERVER_COMMON_CLOCK_H_
#define NPYSTREAM_SERVER_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace npystream {

// Thread-safe. Implementations must outlive every user.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowUnixMs() = 0;
  // The process-wide real clock; never null, never freed.
  static Clock* Real();
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_CLOCK_H_
