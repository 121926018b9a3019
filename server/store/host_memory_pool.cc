#include "server/store/host_memory_pool.h"

#include <sys/mman.h>

#include <algorithm>

namespace npystream {

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t{2} << 20;

size_t RoundUp(size_t n, size_t step) { return (n + step - 1) / step * step; }

void* MapBlock(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (size >= 2 * kHugePage) {
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + size) & ~(kHugePage - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
  return p;
}

}  // namespace

std::shared_ptr<HostMemoryPool> HostMemoryPool::Create(const Options& options) {
  return std::shared_ptr<HostMemoryPool>(new HostMemoryPool(options));
}

HostMemoryPool::~HostMemoryPool() { Trim(); }

size_t HostMemoryPool::BlockSize(size_t bytes) {
  const size_t n = RoundUp(std::max<size_t>(bytes, 1), kPage);
  const int log2 = 63 - __builtin_clzll(n);
  const size_t step = std::max(kPage, size_t{1} << std::max(0, log2 - 2));
  return RoundUp(n, step);
}

void* HostMemoryPool::Allocate(size_t bytes) {
  const size_t size = BlockSize(bytes);
  {
    absl::MutexLock lock(&mu_);
    auto it = kept_.find(size);
    if (it != kept_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
      in_use_bytes_ += size;
      return p;
    }
  }
  void* p = MapBlock(size);
  if (p == nullptr && Trim() > 0) p = MapBlock(size);  // kept blocks of other sizes
  if (p == nullptr) return nullptr;
  absl::MutexLock lock(&mu_);
  in_use_bytes_ += size;
  return p;
}

void HostMemoryPool::Free(void* block, size_t bytes) {
  if (block == nullptr) return;
  const size_t size = BlockSize(bytes);
  {
    absl::MutexLock lock(&mu_);
    in_use_bytes_ -= size;
    if (cached_bytes_ + size <= options_.cache_bytes) {
      kept_[size].push_back(block);
      cached_bytes_ += size;
      return;
    }
  }
  munmap(block, size);
}

uint64_t HostMemoryPool::Trim() {
  std::map<size_t, std::vector<void*>> kept;
  uint64_t bytes = 0;
  {
    absl::MutexLock lock(&mu_);
    kept.swap(kept_);
    bytes = cached_bytes_;
    cached_bytes_ = 0;
  }
  for (const auto& [size, blocks] : kept) {
    for (void* p : blocks) munmap(p, size);
  }
  return bytes;
}

uint64_t HostMemoryPool::cached_bytes() const {
  absl::MutexLock lock(&mu_);
  return cached_bytes_;
}

uint64_t HostMemoryPool::in_use_bytes() const {
  absl::MutexLock lock(&mu_);
  return in_use_bytes_;
}

}  // namespace npystream
