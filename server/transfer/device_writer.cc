#include "server/transfer/device_writer.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"

namespace npystream {
namespace {

// The shared state of one device write (a Put). Bytes queue in `backlog_`,
// are copied into the slot being filled, and a full slot is copied to the
// device; the slot returns to the ring when that copy completes.
class DeviceWrite : public std::enable_shared_from_this<DeviceWrite> {
 public:
  DeviceWrite(std::shared_ptr<StagingRing> ring, CopyDevice* device, void* dst, uint64_t nbytes,
              std::shared_ptr<const void> keepalive, TransferMetrics* metrics)
      : ring_(std::move(ring)),
        device_(device),
        dst_(static_cast<char*>(dst)),
        nbytes_(nbytes),
        keepalive_(std::move(keepalive)),
        slot_bytes_(ring_->slot_bytes()),
        metrics_(metrics),
        owner_(ring_->NewOwner()) {}

  void Write(HostChunk chunk) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || !status_.ok() || chunk.size == 0) return;
      status_ = CheckWriteFits(chunk.size, queued_, nbytes_);
      if (status_.ok()) {
        queued_ += chunk.size;
        backlog_.push_back(std::move(chunk));
      }
    }
    Pump();
  }

  void WhenWritable(std::function<void(absl::Status)> ready) {
    {
      absl::MutexLock lock(&mu_);
      writable_ = std::move(ready);
    }
    Pump();
  }

  void Flush(std::function<void(absl::Status)> done) {
    {
      absl::MutexLock lock(&mu_);
      flushing_ = true;
      flushed_ = std::move(done);
    }
    Pump();
  }

  void Close() {
    std::deque<HostChunk> backlog;
    std::shared_ptr<SlotLease> filling;
    std::function<void(absl::Status)> writable, flushed;
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      backlog.swap(backlog_);
      filling.swap(filling_);
      writable.swap(writable_);
      flushed.swap(flushed_);
    }
    ring_->CancelWaiters(owner_);
  }

 private:
  struct Copy {
    int64_t slot;
    size_t size;
    std::shared_ptr<SlotLease> lease;
  };
  using Callback = std::function<void(absl::Status)>;

  // Moves backlog bytes into slots while slots are free, starts the copies of
  // full slots, and answers WhenWritable/Flush when their time has come.
  // Callbacks and copies start outside mu_ (a slot returning on this thread
  // may be granted straight back to us).
  void Pump() {
    auto self = shared_from_this();  // a callback may drop the last reader of us
    std::vector<Copy> copies;
    std::vector<std::pair<Callback, absl::Status>> calls;
    // Owners of chunks copied out (a whole gRPC message may go with the last
    // one): released after mu_, never under it.
    std::vector<std::shared_ptr<const void>> consumed;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      while (status_.ok() && !backlog_.empty()) {
        if (filling_ == nullptr) {
          if (waiting_for_slot_) break;
          std::weak_ptr<DeviceWrite> weak = weak_from_this();
          filling_ = ring_->TryAcquire(owner_, [weak](std::shared_ptr<SlotLease> granted) {
            if (auto s = weak.lock()) s->OnLease(std::move(granted));
          });
          if (filling_ == nullptr) {
            waiting_for_slot_ = true;  // backpressure: the ring calls OnLease
            break;
          }
          filled_ = 0;
        }
        HostChunk& front = backlog_.front();
        const size_t take = std::min(front.size - front_used_, SlotLength(filling_slot_) - filled_);
        std::memcpy(filling_->data() + filled_, front.data + front_used_, take);
        filled_ += take;
        front_used_ += take;
        if (front_used_ == front.size) {
          consumed.push_back(std::move(front.owner));
          backlog_.pop_front();
          front_used_ = 0;
        }
        if (filled_ == SlotLength(filling_slot_)) copies.push_back(TakeFillingLocked());
      }
      if (flushing_ && status_.ok() && backlog_.empty() && filling_ != nullptr && filled_ > 0) {
        copies.push_back(TakeFillingLocked());  // a short (truncated) payload's last slot
      }
      in_flight_ += static_cast<int>(copies.size());
      if (writable_ && (!status_.ok() || backlog_.empty())) {
        calls.emplace_back(std::move(writable_), status_);
        writable_ = nullptr;
      }
      if (flushed_ && flushing_ && (!status_.ok() || (backlog_.empty() && in_flight_ == 0))) {
        calls.emplace_back(std::move(flushed_), status_);
        flushed_ = nullptr;
      }
    }
    for (Copy& c : copies) StartCopy(std::move(c));
    for (auto& [call, status] : calls) call(status);
  }

  uint64_t SlotLength(int64_t k) const {
    return std::min<uint64_t>(slot_bytes_, nbytes_ - static_cast<uint64_t>(k) * slot_bytes_);
  }

  Copy TakeFillingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Copy c{filling_slot_++, filled_, std::move(filling_)};
    filling_ = nullptr;
    filled_ = 0;
    return c;
  }

  void OnLease(std::shared_ptr<SlotLease> lease) {
    {
      absl::MutexLock lock(&mu_);
      waiting_for_slot_ = false;
      if (closed_) return;  // the lease goes back when `lease` drops
      filling_ = std::move(lease);
      filled_ = 0;
    }
    Pump();
  }

  void StartCopy(Copy c) {
    std::weak_ptr<DeviceWrite> weak = weak_from_this();
    char* src = c.lease->data();
    const size_t n = c.size;
    // The callback holds the slot and the destination's keepalive, so
    // neither goes away under a copy in flight.
    device_->CopyToDeviceAsync(
        dst_ + static_cast<uint64_t>(c.slot) * slot_bytes_, src, n,
        static_cast<int>(c.slot % device_->num_streams()),
        [weak, n, lease = std::move(c.lease), keep = keepalive_](const absl::Status& status) {
          if (auto self = weak.lock()) self->OnCopied(n, status);
        });
  }

  void OnCopied(size_t n, const absl::Status& status) {
    if (metrics_ != nullptr && status.ok()) metrics_->H2DBytes(n);
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      if (!status.ok() && status_.ok()) status_ = status;
    }
    Pump();
  }

  const std::shared_ptr<StagingRing> ring_;
  CopyDevice* const device_;
  char* const dst_;
  const uint64_t nbytes_;
  const std::shared_ptr<const void> keepalive_;
  const uint64_t slot_bytes_;
  TransferMetrics* const metrics_;
  const uint64_t owner_;
  absl::Mutex mu_;
  std::deque<HostChunk> backlog_ ABSL_GUARDED_BY(mu_);
  size_t front_used_ ABSL_GUARDED_BY(mu_) = 0;  // bytes of backlog_.front() already taken
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;    // bytes given to Write
  std::shared_ptr<SlotLease> filling_ ABSL_GUARDED_BY(mu_);
  int64_t filling_slot_ ABSL_GUARDED_BY(mu_) = 0;  // payload slot index of filling_
  size_t filled_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool waiting_for_slot_ ABSL_GUARDED_BY(mu_) = false;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  Callback writable_ ABSL_GUARDED_BY(mu_);
  Callback flushed_ ABSL_GUARDED_BY(mu_);
};

class DeviceWriter : public PayloadWriter {
 public:
  explicit DeviceWriter(std::shared_ptr<DeviceWrite> write) : write_(std::move(write)) {}
  ~DeviceWriter() override { write_->Close(); }
  void Write(HostChunk chunk) override { write_->Write(std::move(chunk)); }
  void WhenWritable(std::function<void(absl::Status)> ready) override {
    write_->WhenWritable(std::move(ready));
  }
  void Flush(std::function<void(absl::Status)> done) override { write_->Flush(std::move(done)); }

 private:
  std::shared_ptr<DeviceWrite> write_;
};

}  // namespace

std::unique_ptr<PayloadWriter> NewDeviceWriter(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, void* device_dst,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               TransferMetrics* metrics) {
  return std::make_unique<DeviceWriter>(std::make_shared<DeviceWrite>(
      std::move(ring), device, device_dst, nbytes, std::move(keepalive), metrics));
}

}  // namespace npystream
