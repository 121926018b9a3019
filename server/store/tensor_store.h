// TensorStore: resident tensors by handle, with a byte budget, TTLs and pins.
#ifndef NPYSTREAM_SERVER_STORE_TENSOR_STORE_H_
#define NPYSTREAM_SERVER_STORE_TENSOR_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/clock.h"
#include "server/npy/dtype.h"
#include "server/store/budget.h"
#include "server/store/device_plan.h"
#include "server/store/host_memory_pool.h"
#include "server/store/shm_dir.h"

namespace at {
class Tensor;
}  // namespace at

namespace npystream {

// What a client sees of a stored tensor (mirrors npystream.v1.TensorInfo).
struct TensorInfo {
  std::string handle;
  std::string name;  // the Put name, empty when the server chose the handle
  npy::ArrayMeta meta;
  uint64_t nbytes = 0;     // payload
  uint64_t npy_bytes = 0;  // header + payload
  std::string device;      // "cpu" or "cuda:N"
  int64_t created_unix_ms = 0;
  int64_t expires_unix_ms = 0;  // 0: never
};

// Shared by a store and every tensor it made, so that tensors outliving the
// store still return their bytes. Thread-safe.
struct StoreAccounts {
  explicit StoreAccounts(uint64_t budget_bytes) : budget(budget_bytes) {}
  Budget budget;
  std::atomic<int64_t> resident{0};  // StoredTensors not yet freed
};

// One immutable resident tensor. Holding a shared_ptr to it is a pin: its
// memory stays valid (and counted in the budget) until the last pin drops,
// even after Release or expiry removed its handle. Thread-safe.
class StoredTensor {
 public:
  ~StoredTensor();
  StoredTensor(const StoredTensor&) = delete;
  StoredTensor& operator=(const StoredTensor&) = delete;

  const TensorInfo& info() const { return info_; }
  // The .npy header numpy.save would write, computed once at insertion.
  const std::string& npy_header() const { return npy_header_; }
  // Payload in C order on the host, or nullptr when the tensor lives on a GPU.
  const char* host_data() const { return host_data_; }
  // Payload in C order on its device (a device pointer for GPU tensors).
  const void* data() const { return data_; }
  // The tensor itself, contiguous. Unsigned 16/32/64-bit payloads are held in
  // a signed tensor of the same width (LibTorch lacks those types).
  const at::Tensor& tensor() const;
  // The tensor's .npy file in the shm folder: its own storage (a host Put
  // or Allocate while --shm-dir is set) or the copy TensorStore::MapShm made;
  // null when neither exists.
  std::shared_ptr<ShmFile> shm_file() const;

 private:
  friend class TensorStore;
  friend class TensorWriter;
  struct Impl;
  StoredTensor(TensorInfo info, std::unique_ptr<Impl> impl,
               std::shared_ptr<StoreAccounts> accounts);
  // Removes the shm file's name (the handle is gone); idempotent.
  void UnlinkShm() const;

  TensorInfo info_;
  std::string npy_header_;
  const char* host_data_ = nullptr;
  const void* data_ = nullptr;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<StoreAccounts> accounts_;
  // Held while MapShm makes the copy, so two Maps make one.
  mutable absl::Mutex shm_mu_;
  mutable std::shared_ptr<ShmFile> shm_copy_ ABSL_GUARDED_BY(shm_mu_);
  mutable bool unlinked_ ABSL_GUARDED_BY(shm_mu_) = false;
};

class TensorStore;

// What the store reports. Thread-safe.
class StoreMetrics {
 public:
  virtual ~StoreMetrics() = default;
  // A strided tensor (an engine output, a Fortran-order Put) was made
  // contiguous: a copy of `bytes` on `device`, never through the host.
  virtual void ContiguousCopy(const std::string& device, uint64_t bytes) = 0;
};

// One Put in progress: payload bytes stream into a tensor preallocated on
// its device. Not thread-safe. Destroying an uncommitted writer returns its
// budget and frees its name.
class TensorWriter {
 public:
  ~TensorWriter();

  // Copies the next payload bytes (after the .npy header) into place; host
  // tensors only (FAILED_PRECONDITION otherwise). INVALID_ARGUMENT when they
  // run past the size the header declared.
  absl::Status Append(const char* data, size_t size);
  // Counts the next `size` payload bytes, which the caller writes itself at
  // destination() + received() (through a transfer engine), in order.
  // INVALID_ARGUMENT when they run past the size the header declared.
  absl::Status Claim(size_t size);
  uint64_t received() const { return received_; }
  uint64_t expected() const { return info_.nbytes; }
  // Where the payload goes: memory on device() ("cpu" or "cuda:N"), valid
  // while the writer or a keepalive() lives.
  void* destination() const { return dst_; }
  const std::string& device() const { return info_.device; }
  // The file destination() is a mapping of, when the tensor is stored in the
  // shm folder (write it with ShmFile::OpenForWrite); else null.
  std::shared_ptr<ShmFile> shm_file() const;
  std::shared_ptr<const void> keepalive() const;

  // Publishes the tensor under its handle. INVALID_ARGUMENT naming the
  // shortfall when fewer bytes arrived than the header declared.
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Commit();

 private:
  friend class TensorStore;
  TensorWriter(TensorStore* store, TensorInfo info, std::unique_ptr<StoredTensor::Impl> impl,
               char* dst);

  TensorStore* store_;
  TensorInfo info_;
  std::unique_ptr<StoredTensor::Impl> impl_;
  char* dst_;  // on info_.device
  uint64_t received_ = 0;
  bool reserved_ = true;
  bool ephemeral_ = false;
};

class TensorStore {
 public:
  struct Options {
    Clock* clock = Clock::Real();               // not owned
    uint64_t budget_bytes = uint64_t{8} << 30;  // per device
    DevicePlan devices;                         // where ""/"auto" go; a host-only plan by default
    StoreMetrics* metrics = nullptr;            // not owned; may be null
    // --shm-dir: host tensors stored as .npy files there; null: off.
    std::shared_ptr<ShmDir> shm;
    // Memory for host tensors from Puts (HostMemoryPool::kMinBlockBytes and
    // up); null: LibTorch's allocator.
    std::shared_ptr<HostMemoryPool> host_memory;
    // An Allocate not committed within this long is dropped (0: never).
    int64_t allocation_timeout_ms = 0;
    // This daemon's replica id ([A-Za-z0-9_.-]): server-chosen handles end in
    // "~<id>", and a call for a handle of another replica is told so
    // (FAILED_PRECONDITION) instead of NOT_FOUND. Empty: plain handles.
    std::string replica_id;
  };

  // What a Put asks for.
  struct PutSpec {
    std::string name;    // empty: the store picks a handle
    std::string device;  // "", "auto", "cpu", "cuda:N"
    uint32_t ttl_seconds = 0;
    npy::ArrayMeta meta;
    bool ephemeral = false;  // see InsertOptions::ephemeral
  };

  static absl::StatusOr<std::unique_ptr<TensorStore>> Create(const Options& options);
  // CUDA devices the linked LibTorch can allocate on (0 for a CPU build).
  static int TorchCudaDeviceCount();
  ~TensorStore();

  // Starts a Put: checks the name and device, reserves the budget and
  // allocates the tensor on its device. INVALID_ARGUMENT (bad name, device, shape),
  // ALREADY_EXISTS (name in use or being put), RESOURCE_EXHAUSTED (budget).
  // Thread-safe; the writer must not outlive the store.
  absl::StatusOr<std::unique_ptr<TensorWriter>> BeginPut(const PutSpec& spec);

  struct InsertOptions {
    std::string name;   // becomes the handle; empty: the store picks one
    std::string label;  // TensorInfo.name when `name` is empty (an output's name)
    uint32_t ttl_seconds = 0;
    // Not published under a handle: lives (and counts in the budget) only
    // while its holders keep it, e.g. a value sent to subscribers.
    bool ephemeral = false;
  };

  // Stores an existing tensor (made contiguous on its own device when it is
  // not). `dtype` is the numpy dtype its bytes represent. Thread-safe.
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Insert(const at::Tensor& tensor,
                                                             npy::DType dtype,
                                                             const InsertOptions& options);

  // Pins the tensor under `handle`. NOT_FOUND when unknown or expired;
  // FAILED_PRECONDITION naming the owner for another replica's handle.
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Acquire(const std::string& handle);
  // All live tensors, oldest first.
  std::vector<TensorInfo> List();
  // Drops the handle (or an uncommitted allocation); memory is freed once
  // in-flight pins drop. NOT_FOUND when unknown.
  absl::Status Release(const std::string& handle);
  // Drops expired handles; returns how many. Called by every call above and
  // periodically by the server.
  int SweepExpired();

  // Same-host Put, step 1: a host tensor file in the shm folder, its header
  // written, its handle reserved (not yet visible). The client writes the
  // payload at data_offset, then calls CommitAllocation. FAILED_PRECONDITION
  // without --shm-dir or for a device other than the host; else as BeginPut.
  struct Allocation {
    TensorInfo info;
    std::shared_ptr<ShmFile> file;
  };
  absl::StatusOr<Allocation> Allocate(const PutSpec& spec);
  // Step 2: publishes the allocation under its handle. NOT_FOUND when no
  // allocation has that handle (never made, committed, or expired).
  absl::StatusOr<std::shared_ptr<const StoredTensor>> CommitAllocation(const std::string& handle);
  // Uncommitted allocations.
  size_t allocations();

  // The tensor's .npy file in the shm folder. A tensor stored elsewhere (a
  // GPU, an inference output) gets a copy, made once by `fill` (which writes
  // the payload into the new file it gets) and counted in the host budget until
  // the tensor is freed. FAILED_PRECONDITION without --shm-dir;
  // RESOURCE_EXHAUSTED when the budget or the folder is full. Blocks while
  // `fill` runs; thread-safe.
  absl::StatusOr<std::shared_ptr<ShmFile>> MapShm(
      const std::shared_ptr<const StoredTensor>& tensor,
      const std::function<absl::Status(const std::shared_ptr<ShmFile>& file)>& fill);
  ShmDir* shm() const { return options_.shm.get(); }
  HostMemoryPool* host_memory() const { return options_.host_memory.get(); }
  // FAILED_PRECONDITION naming --shm-dir when there is no shm folder.
  absl::Status RequireShm() const;

  const Budget& budget() const { return accounts_->budget; }
  // Tensors with a live handle.
  size_t size();
  // Tensors not yet freed: live handles plus released ones still pinned.
  int64_t resident_count() const { return accounts_->resident.load(); }

 private:
  friend class TensorWriter;
  explicit TensorStore(const Options& options);

  absl::Status ValidateName(const std::string& name) const;
  // NOT_FOUND for `handle`, or FAILED_PRECONDITION naming its owner when
  // another replica made it.
  absl::Status Missing(const std::string& handle) const;
  std::string NewHandleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks the handle (`name`, a new one, or none when ephemeral), stamps the
  // times, reserves info->nbytes on info->device and marks the handle pending.
  absl::Status Reserve(const std::string& name, uint32_t ttl_seconds, bool ephemeral,
                       TensorInfo* info) ABSL_LOCKS_EXCLUDED(mu_);
  // Tensors are freed after mu_ is released: the caller declares `expired`
  // before taking the lock, so it is destroyed after the lock.
  using Dropped = std::vector<std::shared_ptr<const StoredTensor>>;
  int SweepExpiredLocked(int64_t now_ms, Dropped* expired) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves allocations past their deadline to `expired` (destroyed by the
  // caller after the lock: that returns their budget).
  void SweepAllocationsLocked(int64_t now_ms, std::vector<std::unique_ptr<TensorWriter>>* expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Publish(
      TensorInfo info, std::unique_ptr<StoredTensor::Impl> impl, bool ephemeral);
  void AbandonPut(const TensorInfo& info, bool reserved);
  void CountContiguousCopy(const std::string& device, uint64_t bytes);

  const Options options_;
  std::shared_ptr<StoreAccounts> accounts_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const StoredTensor>> tensors_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  struct PendingAllocation {
    std::unique_ptr<TensorWriter> writer;
    int64_t expires_unix_ms = 0;  // 0: never
  };
  std::map<std::string, PendingAllocation> allocations_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_TENSOR_STORE_H_
