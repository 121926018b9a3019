#include "server/store/budget.h"

#include "absl/strings/str_cat.h"
#include "server/common/byte_size.h"

namespace npystream {

absl::Status Budget::Reserve(const std::string& device, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  uint64_t& used = used_[device];
  if (bytes > limit_ || used > limit_ - bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("store budget exceeded on ", device, ": need ", bytes, " bytes (",
                     FormatByteSize(bytes), "), ", used, " of ", limit_, " bytes (",
                     FormatByteSize(limit_), ") in use; release tensors or raise --store-budget"));
  }
  used += bytes;
  return absl::OkStatus();
}

void Budget::Release(const std::string& device, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  uint64_t& used = used_[device];
  used = bytes > used ? 0 : used - bytes;
}

uint64_t Budget::used(const std::string& device) const {
  absl::MutexLock lock(&mu_);
  auto it = used_.find(device);
  return it == used_.end() ? 0 : it->second;
}

std::map<std::string, uint64_t> Budget::UsedByDevice() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

}  // namespace npystream
