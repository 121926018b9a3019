// ThreadPool: a fixed set of threads running queued closures in order.
#ifndef NPYSTREAM_SERVER_COMMON_THREAD_POOL_H_
#define NPYSTREAM_SERVER_COMMON_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace npystream {

// Thread-safe. The destructor runs what is queued, then joins.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  void Schedule(std::function<void()> fn);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_THREAD_POOL_H_
