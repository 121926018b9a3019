// StagingRing: a fixed pinned host buffer cut into equal slots, shared by all
// fetches of one device. A slot is lent as a shared Lease and comes back when
// the last holder (the fetch, an in-flight copy, gRPC's slice) drops it.
#ifndef NPYSTREAM_SERVER_TRANSFER_STAGING_RING_H_
#define NPYSTREAM_SERVER_TRANSFER_STAGING_RING_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/transfer/copy_device.h"

namespace npystream {

class StagingRing;

// One slot on loan. Destroying the last shared_ptr to it returns the slot.
class SlotLease {
 public:
  ~SlotLease();
  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  friend class StagingRing;
  SlotLease(std::shared_ptr<StagingRing> ring, int slot, uint64_t owner, char* data, size_t size)
      : ring_(std::move(ring)), slot_(slot), owner_(owner), data_(data), size_(size) {}
  std::shared_ptr<StagingRing> ring_;
  const int slot_;
  const uint64_t owner_;
  char* const data_;
  const size_t size_;
};

// Thread-safe. Create with Create(); it is kept alive by its leases.
class StagingRing : public std::enable_shared_from_this<StagingRing> {
 public:
  struct Options {
    size_t ring_bytes = size_t{256} << 20;
    size_t slot_bytes = size_t{4} << 20;
    // Most slots one owner (a fetch) may hold at once, so one huge fetch
    // cannot starve the others; 0: a quarter of the slots, at least 4 (gRPC
    // may hold a sent chunk or two while the next ones copy).
    int max_slots_per_owner = 0;
    CopyDevice* device = nullptr;  // allocates the pinned memory; not owned
  };

  static absl::StatusOr<std::shared_ptr<StagingRing>> Create(const Options& options);
  ~StagingRing();

  // A fresh owner id for one fetch.
  uint64_t NewOwner();
  // Lends a slot to `owner` now if one is free and the owner is under its
  // cap; otherwise returns null and, when `ready` is given, queues it: it is
  // called (on the releasing thread, without locks held) with a lease as soon
  // as the owner's turn comes. Waiters are served first come, first served.
  std::shared_ptr<SlotLease> TryAcquire(uint64_t owner,
                                        std::function<void(std::shared_ptr<SlotLease>)> ready);
  // Drops `owner`'s queued waiters (a fetch that ended).
  void CancelWaiters(uint64_t owner);

  int slot_count() const { return static_cast<int>(slots_.size()); }
  size_t slot_bytes() const { return options_.slot_bytes; }
  int free_slots();
  size_t free_bytes() { return static_cast<size_t>(free_slots()) * options_.slot_bytes; }
  int max_slots_per_owner() const { return cap_; }

 private:
  friend class SlotLease;
  explicit StagingRing(const Options& options) : options_(options) {}
  void Return(int slot, uint64_t owner);
  std::shared_ptr<SlotLease> LendLocked(uint64_t owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  char* memory_ = nullptr;
  std::vector<char*> slots_;
  int cap_ = 2;
  absl::Mutex mu_;
  std::vector<int> free_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int> held_ ABSL_GUARDED_BY(mu_);
  struct Waiter {
    uint64_t owner;
    std::function<void(std::shared_ptr<SlotLease>)> ready;
  };
  std::deque<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_owner_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_STAGING_RING_H_
