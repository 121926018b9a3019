#include "server/common/periodic_runner.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace npystream {

void PeriodicRunner::Add(std::string name, absl::Duration period, std::function<void()> task) {
  tasks_.push_back(Task{std::move(name), std::max(period, absl::Milliseconds(1)), std::move(task),
                        absl::InfinitePast()});
}

void PeriodicRunner::Start() {
  if (tasks_.empty() || thread_.joinable()) return;
  const absl::Time now = absl::Now();
  for (Task& t : tasks_) t.next = now + t.period;
  thread_ = std::thread([this] { Loop(); });
}

void PeriodicRunner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void PeriodicRunner::Loop() {
  for (;;) {
    absl::Time due = absl::InfiniteFuture();
    for (const Task& t : tasks_) due = std::min(due, t.next);
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&stop_), due);
      if (stop_) return;
    }
    const absl::Time now = absl::Now();
    for (Task& t : tasks_) {
      if (t.next > now) continue;
      t.fn();
      t.next = std::max(t.next + t.period, now);
    }
  }
}

}  // namespace npystream
