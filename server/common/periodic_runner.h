// PeriodicRunner: one thread that runs each task at its own period (the
// daemon's TTL sweep and idle-stream watchdog).
#ifndef NPYSTREAM_SERVER_COMMON_PERIODIC_RUNNER_H_
#define NPYSTREAM_SERVER_COMMON_PERIODIC_RUNNER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace npystream {

// Add tasks, then Start; Stop (or the destructor) waits for a task in
// progress and joins. Tasks run one at a time on the runner's thread; a slow
// task delays the others. Add and Start are not thread-safe; Stop is.
class PeriodicRunner {
 public:
  PeriodicRunner() = default;
  PeriodicRunner(const PeriodicRunner&) = delete;
  PeriodicRunner& operator=(const PeriodicRunner&) = delete;
  ~PeriodicRunner() { Stop(); }

  // `task` runs every `period` (> 0), first one period after Start.
  void Add(std::string name, absl::Duration period, std::function<void()> task);
  void Start();
  // Idempotent.
  void Stop();

 private:
  struct Task {
    std::string name;
    absl::Duration period;
    std::function<void()> fn;
    absl::Time next;
  };
  void Loop();

  std::vector<Task> tasks_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_PERIODIC_RUNNER_H_
