#include "server/transfer/device_transfer.h"

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
      if (chunk.size > nbytes_ - queued_) {
        status_ = absl::OutOfRangeError(absl::StrCat("write of ", chunk.size, " bytes at ", queued_,
                                                     " is past ", nbytes_, " bytes"));
      } else {
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

std::unique_ptr<PayloadReader> NewDeviceReader(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, const void* device_src,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               int prefetch_slots, TransferMetrics* metrics) {
  return std::make_unique<DeviceReader>(std::make_shared<DeviceRead>(
      std::move(ring), device, device_src, nbytes, std::move(keepalive), prefetch_slots, metrics));
}

std::unique_ptr<PayloadWriter> NewDeviceWriter(std::shared_ptr<StagingRing> ring,
                                               CopyDevice* device, void* device_dst,
                                               uint64_t nbytes,
                                               std::shared_ptr<const void> keepalive,
                                               TransferMetrics* metrics) {
  return std::make_unique<DeviceWriter>(std::make_shared<DeviceWrite>(
      std::move(ring), device, device_dst, nbytes, std::move(keepalive), metrics));
}

absl::StatusOr<std::unique_ptr<DeviceTransfer>> DeviceTransfer::Create(const Options& options) {
  std::unique_ptr<DeviceTransfer> t(new DeviceTransfer(options));
  for (const auto& [name, device] : options.devices) {
    StagingRing::Options ro;
    ro.ring_bytes = options.ring_bytes;
    ro.slot_bytes = options.slot_bytes;
    ro.max_slots_per_owner = options.max_slots_per_fetch;
    ro.device = device;
    auto ring = StagingRing::Create(ro);
    if (!ring.ok()) {
      return absl::Status(ring.status().code(), absl::StrCat(name, ": ", ring.status().message()));
    }
    t->rings_[name] = std::move(*ring);
  }
  return t;
}

absl::StatusOr<std::unique_ptr<PayloadReader>> DeviceTransfer::OpenReader(
    std::shared_ptr<const StoredTensor> tensor) {
  if (tensor->info().nbytes == 0 ||
      (tensor->host_data() != nullptr && !options_.stage_host_tensors)) {
    return host_->OpenReader(std::move(tensor));
  }
  auto it = rings_.find(tensor->info().device);
  if (it == rings_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no staging ring for device ", tensor->info().device));
  }
  const void* src = tensor->data();
  const uint64_t nbytes = tensor->info().nbytes;
  return NewDeviceReader(it->second, options_.devices.at(it->first), src, nbytes, std::move(tensor),
                         options_.prefetch_slots, options_.metrics);
}

absl::StatusOr<std::unique_ptr<PayloadWriter>> DeviceTransfer::OpenWriter(
    const std::string& device, void* dst, uint64_t nbytes, std::shared_ptr<const void> keepalive) {
  if (nbytes == 0 || (device == "cpu" && !options_.stage_host_tensors)) {
    return host_->OpenWriter(device, dst, nbytes, std::move(keepalive));
  }
  auto it = rings_.find(device);
  if (it == rings_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("no staging ring for device ", device));
  }
  return NewDeviceWriter(it->second, options_.devices.at(it->first), dst, nbytes,
                         std::move(keepalive), options_.metrics);
}

size_t DeviceTransfer::free_staging_bytes() {
  size_t n = 0;
  for (auto& [name, ring] : rings_) n += ring->free_bytes();
  return n;
}

}  // namespace npystream
