#include "server/transfer/staging_ring.h"

#include "absl/strings/str_cat.h"

namespace npystream {

SlotLease::~SlotLease() { ring_->Return(slot_, owner_); }

absl::StatusOr<std::shared_ptr<StagingRing>> StagingRing::Create(const Options& options) {
  if (options.device == nullptr) return absl::InvalidArgumentError("StagingRing needs a device");
  if (options.slot_bytes == 0 || options.ring_bytes < 2 * options.slot_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("staging ring of ", options.ring_bytes,
                                                   " bytes needs at least two slots of ",
                                                   options.slot_bytes, " bytes"));
  }
  std::shared_ptr<StagingRing> ring(new StagingRing(options));
  const size_t n = options.ring_bytes / options.slot_bytes;
  auto memory = options.device->AllocPinned(n * options.slot_bytes);
  if (!memory.ok()) return memory.status();
  ring->memory_ = static_cast<char*>(*memory);
  for (size_t i = 0; i < n; ++i) ring->slots_.push_back(ring->memory_ + i * options.slot_bytes);
  ring->cap_ = options.max_slots_per_owner > 0
                   ? options.max_slots_per_owner
                   : std::max<int>(std::min<int>(4, static_cast<int>(n)), static_cast<int>(n) / 4);
  absl::MutexLock lock(&ring->mu_);
  for (int i = static_cast<int>(n) - 1; i >= 0; --i) ring->free_.push_back(i);
  return ring;
}

StagingRing::~StagingRing() {
  if (memory_ != nullptr) options_.device->FreePinned(memory_);
}

uint64_t StagingRing::NewOwner() {
  absl::MutexLock lock(&mu_);
  return next_owner_++;
}

std::shared_ptr<SlotLease> StagingRing::LendLocked(uint64_t owner) {
  const int slot = free_.back();
  free_.pop_back();
  ++held_[owner];
  return std::shared_ptr<SlotLease>(
      new SlotLease(shared_from_this(), slot, owner, slots_[slot], options_.slot_bytes));
}

std::shared_ptr<SlotLease> StagingRing::TryAcquire(
    uint64_t owner, std::function<void(std::shared_ptr<SlotLease>)> ready) {
  absl::MutexLock lock(&mu_);
  // Waiters still queued while a slot is free are all at their cap, so a
  // caller under its cap takes the slot without jumping anyone's turn.
  if (!free_.empty() && held_[owner] < cap_) return LendLocked(owner);
  if (ready) waiters_.push_back(Waiter{owner, std::move(ready)});
  return nullptr;
}

void StagingRing::CancelWaiters(uint64_t owner) {
  absl::MutexLock lock(&mu_);
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    it = it->owner == owner ? waiters_.erase(it) : it + 1;
  }
}

void StagingRing::Return(int slot, uint64_t owner) {
  std::vector<
      std::pair<std::function<void(std::shared_ptr<SlotLease>)>, std::shared_ptr<SlotLease>>>
      grants;
  {
    absl::MutexLock lock(&mu_);
    free_.push_back(slot);
    if (--held_[owner] == 0) held_.erase(owner);
    // Serve waiters in order; skip (keep queued) owners at their cap.
    for (auto it = waiters_.begin(); it != waiters_.end() && !free_.empty();) {
      if (held_[it->owner] < cap_) {
        grants.emplace_back(std::move(it->ready), LendLocked(it->owner));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [ready, lease] : grants) ready(std::move(lease));
}

int StagingRing::free_slots() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(free_.size());
}

}  // namespace npystream
