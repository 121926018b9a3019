#ifndef NPYSTREAM_SERVER_STORE_HOST_MEMORY_POOL_H_
#define NPYSTREAM_SERVER_STORE_HOST_MEMORY_POOL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace npystream {

// Host memory for stored tensors, apart from the malloc heaps: each block is
// its own anonymous mapping, a freed block is kept for reuse (no page faults
// for the next Put of its size class) while the kept blocks total at most
// `cache_bytes`, and Trim() unmaps every kept block. So the memory of tensors
// that are gone goes back to the kernel when the daemon idles, which glibc
// cannot do for the heap it keeps per thread arena (malloc_trim never shrinks
// an arena's top). Thread-safe. Outlive every block (share it with deleters).
class HostMemoryPool {
 public:
  struct Options {
    uint64_t cache_bytes = uint64_t{256} << 20;  // freed blocks kept at most
  };
  // Smaller requests are not worth a mapping: callers use malloc for them.
  static constexpr size_t kMinBlockBytes = size_t{128} << 10;

  static std::shared_ptr<HostMemoryPool> Create(const Options& options);
  ~HostMemoryPool();  // unmaps the kept blocks; blocks still out are leaked
  HostMemoryPool(const HostMemoryPool&) = delete;
  HostMemoryPool& operator=(const HostMemoryPool&) = delete;

  // Page-aligned memory for at least `bytes` (any content); null when the
  // kernel refuses a mapping even after Trim(). Blocks of 4 MiB and more are
  // advised onto transparent huge pages.
  void* Allocate(size_t bytes);
  // Gives back a block from Allocate(`bytes`, the same count): kept for reuse
  // or, past the cache limit, unmapped (never under the pool's lock).
  void Free(void* block, size_t bytes);
  // Unmaps every kept block; returns the bytes given back.
  uint64_t Trim();

  // The mapping size Allocate(bytes) uses: whole pages, at most four classes
  // per power of two (a block wastes under 25 %).
  static size_t BlockSize(size_t bytes);
  uint64_t cached_bytes() const;  // kept for reuse
  uint64_t in_use_bytes() const;  // handed out, not yet freed

 private:
  explicit HostMemoryPool(const Options& options) : options_(options) {}

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<size_t, std::vector<void*>> kept_ ABSL_GUARDED_BY(mu_);  // by block size
  uint64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t in_use_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_HOST_MEMORY_POOL_H_
