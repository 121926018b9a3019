#include "server/transfer/device_reader.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"

namespace npystream {
namespace {

// The shared state of one device read; callbacks hold it weakly.
class DeviceRead : public std::enable_shared_from_this<DeviceRead> {
 public:
  DeviceRead(std::shared_ptr<StagingRing> ring, CopyDevice* device, const void* src,
             uint64_t nbytes, std::shared_ptr<const void> keepalive, int prefetch,
             TransferMetrics* metrics)
      : ring_(std::move(ring)),
        device_(device),
        src_(static_cast<const char*>(src)),
        nbytes_(nbytes),
        keepalive_(std::move(keepalive)),
        slot_bytes_(ring_->slot_bytes()),
        slots_total_(static_cast<int64_t>((nbytes + slot_bytes_ - 1) / slot_bytes_)),
        prefetch_(std::max(1, std::min(prefetch, ring_->max_slots_per_owner()))),
        metrics_(metrics),
        owner_(ring_->NewOwner()) {}

  void Read(uint64_t offset, size_t max_size, ChunkCallback done) {
    const int64_t k = static_cast<int64_t>(offset / slot_bytes_);
    std::vector<Slot> passed;  // released after the lock: a returning slot
                               // may be granted straight back to us
    {
      absl::MutexLock lock(&mu_);
      // The consumer has moved past earlier slots: drop our references (gRPC
      // may still hold the chunks; the slot returns when it lets go).
      for (auto it = window_.begin(); it != window_.end() && it->first < k;) {
        passed.push_back(std::move(it->second));
        it = window_.erase(it);
      }
      pending_ =
          Pending{k, offset - static_cast<uint64_t>(k) * slot_bytes_, max_size, std::move(done)};
      consumer_ = k;
    }
    Pump();
  }

  void Close() {
    std::map<int64_t, Slot> dropped;
    std::optional<Pending> abandoned;
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      dropped.swap(window_);
      abandoned.swap(pending_);
    }
    ring_->CancelWaiters(owner_);
  }

 private:
  struct Slot {
    std::shared_ptr<SlotLease> lease;
    bool ready = false;
    absl::Status status;
  };
  struct Pending {
    int64_t slot;
    uint64_t within;
    size_t max_size;
    ChunkCallback done;
  };

  // Issues copies up to the prefetch depth, then answers the pending read if
  // its slot is ready. Never calls out while holding mu_.
  void Pump() {
    std::vector<std::pair<int64_t, std::shared_ptr<SlotLease>>> to_copy;
    std::optional<std::pair<ChunkCallback, absl::StatusOr<HostChunk>>> answer;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      while (!waiting_for_slot_ && next_issue_ < slots_total_ &&
             next_issue_ < consumer_ + prefetch_) {
        std::weak_ptr<DeviceRead> weak = weak_from_this();
        auto lease = ring_->TryAcquire(owner_, [weak](std::shared_ptr<SlotLease> granted) {
          if (auto self = weak.lock()) self->OnLease(std::move(granted));
        });
        if (lease == nullptr) {
          waiting_for_slot_ = true;  // backpressure: the ring calls OnLease
          break;
        }
        window_[next_issue_] = Slot{lease, false, absl::OkStatus()};
        to_copy.emplace_back(next_issue_++, std::move(lease));
      }
      answer = TakeAnswerLocked();
    }
    for (auto& [k, lease] : to_copy) StartCopy(k, std::move(lease));
    if (answer) answer->first(std::move(answer->second));
  }

  std::optional<std::pair<ChunkCallback, absl::StatusOr<HostChunk>>> TakeAnswerLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!pending_) return std::nullopt;
    auto it = window_.find(pending_->slot);
    if (it == window_.end() || !it->second.ready) return std::nullopt;
    Pending p = std::move(*pending_);
    pending_.reset();
    if (!it->second.status.ok())
      return std::make_pair(std::move(p.done), absl::StatusOr<HostChunk>(it->second.status));
    const uint64_t slot_len =
        std::min<uint64_t>(slot_bytes_, nbytes_ - static_cast<uint64_t>(p.slot) * slot_bytes_);
    HostChunk chunk;
    chunk.data = it->second.lease->data() + p.within;
    chunk.size = static_cast<size_t>(std::min<uint64_t>(p.max_size, slot_len - p.within));
    chunk.owner = it->second.lease;
    return std::make_pair(std::move(p.done), absl::StatusOr<HostChunk>(std::move(chunk)));
  }

  void OnLease(std::shared_ptr<SlotLease> lease) {
    int64_t k;
    {
      absl::MutexLock lock(&mu_);
      waiting_for_slot_ = false;
      if (closed_ || next_issue_ >= slots_total_) return;  // the lease goes back
      k = next_issue_++;
      window_[k] = Slot{lease, false, absl::OkStatus()};
    }
    StartCopy(k, std::move(lease));
    Pump();
  }

  void StartCopy(int64_t k, std::shared_ptr<SlotLease> lease) {
    const uint64_t begin = static_cast<uint64_t>(k) * slot_bytes_;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(slot_bytes_, nbytes_ - begin));
    std::weak_ptr<DeviceRead> weak = weak_from_this();
    char* dst = lease->data();
    // The callback holds the lease and the source's keepalive, so neither the
    // slot nor the device memory goes away under a copy in flight.
    device_->CopyToHostAsync(
        dst, src_ + begin, n, static_cast<int>(k % device_->num_streams()),
        [weak, k, n, lease = std::move(lease), keep = keepalive_](absl::Status status) {
          if (auto self = weak.lock()) self->OnCopied(k, n, std::move(status));
        });
  }

  void OnCopied(int64_t k, size_t n, absl::Status status) {
    if (metrics_ != nullptr && status.ok()) metrics_->D2HBytes(n);
    std::optional<std::pair<ChunkCallback, absl::StatusOr<HostChunk>>> answer;
    {
      absl::MutexLock lock(&mu_);
      auto it = window_.find(k);
      if (closed_ || it == window_.end()) return;
      it->second.ready = true;
      it->second.status = std::move(status);
      answer = TakeAnswerLocked();
    }
    if (answer) answer->first(std::move(answer->second));
  }

  const std::shared_ptr<StagingRing> ring_;
  CopyDevice* const device_;
  const char* const src_;
  const uint64_t nbytes_;
  const std::shared_ptr<const void> keepalive_;
  const uint64_t slot_bytes_;
  const int64_t slots_total_;
  const int prefetch_;
  TransferMetrics* const metrics_;
  const uint64_t owner_;
  absl::Mutex mu_;
  std::map<int64_t, Slot> window_ ABSL_GUARDED_BY(mu_);
  std::optional<Pending> pending_ ABSL_GUARDED_BY(mu_);
  int64_t next_issue_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t consumer_ ABSL_GUARDED_BY(mu_) = 0;
  bool waiting_for_slot_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class DeviceReader : public PayloadReader {
 public:
  explicit DeviceReader(std::shared_ptr<DeviceRead> read) : read_(std::move(read)) {}
  ~DeviceReader() override { read_->Close(); }
  void Read(uint64_t offset, size_t max_size, ChunkCallback done) override {
    read_->Read(offset, max_size, std::move(done));
  }

 private:
  std::shared_ptr<DeviceRead> read_;
};

}  // namespace

std::unique_ptr<PayloadReader> NewDeviceReader(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, const void* device_src,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               int prefetch_slots, TransferMetrics* metrics) {
  return std::make_unique<DeviceReader>(std::make_shared<DeviceRead>(
      std::move(ring), device, device_src, nbytes, std::move(keepalive), prefetch_slots, metrics));
}

}  // namespace npystream
