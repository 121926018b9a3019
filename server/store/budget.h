// Budget: bytes reserved per device against a fixed limit.
#ifndef NPYSTREAM_SERVER_STORE_BUDGET_H_
#define NPYSTREAM_SERVER_STORE_BUDGET_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace npystream {

// Thread-safe. Each device has the same limit, accounted separately.
class Budget {
 public:
  explicit Budget(uint64_t limit_bytes) : limit_(limit_bytes) {}

  // Reserves `bytes` on `device`; RESOURCE_EXHAUSTED naming the need, the use
  // and the limit when it does not fit. Never evicts anything.
  absl::Status Reserve(const std::string& device, uint64_t bytes);
  // Returns bytes reserved earlier.
  void Release(const std::string& device, uint64_t bytes);

  uint64_t limit() const { return limit_; }
  uint64_t used(const std::string& device) const;
  std::map<std::string, uint64_t> UsedByDevice() const;

 private:
  const uint64_t limit_;
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> used_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_BUDGET_H_
