#include "server/testing/fake_copy_device.h"

#include <cstdlib>
#include <cstring>

namespace npystream {

FakeCopyDevice::FakeCopyDevice(int streams, unsigned seed) : streams_(streams), rng_(seed) {
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { Loop(); });
}

FakeCopyDevice::~FakeCopyDevice() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    paused_ = false;
  }
  for (auto& t : threads_) t.join();
}

absl::StatusOr<void*> FakeCopyDevice::AllocPinned(size_t bytes) {
  void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (p == nullptr) return absl::ResourceExhaustedError("fake pinned allocation failed");
  absl::MutexLock lock(&mu_);
  pinned_ += static_cast<int64_t>(bytes);
  return p;
}

void FakeCopyDevice::FreePinned(void* p) { std::free(p); }

void FakeCopyDevice::CopyToHostAsync(void* host_dst, const void* device_src, size_t bytes,
                                     int stream, std::function<void(absl::Status)> done) {
  absl::MutexLock lock(&mu_);
  (void)stream;
  queue_.push_back(Copy{host_dst, device_src, bytes, std::move(done)});
  ++started_;
  max_queued_ = std::max<int>(max_queued_, static_cast<int>(queue_.size()));
}

void FakeCopyDevice::CopyToDeviceAsync(void* device_dst, const void* host_src, size_t bytes,
                                       int stream, std::function<void(absl::Status)> done) {
  CopyToHostAsync(device_dst, host_src, bytes, stream, std::move(done));
}

void FakeCopyDevice::SetFailing(bool failing) {
  absl::MutexLock lock(&mu_);
  failing_ = failing;
}

void FakeCopyDevice::Loop() {
  for (;;) {
    Copy copy;
    bool fail;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](FakeCopyDevice* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
            return d->stopping_ || (!d->paused_ && !d->queue_.empty());
          },
          this));
      if (queue_.empty()) return;
      // Out of order: any queued copy may finish next.
      const size_t i = std::uniform_int_distribution<size_t>(0, queue_.size() - 1)(rng_);
      copy = std::move(queue_[i]);
      queue_.erase(queue_.begin() + static_cast<long>(i));
      ++running_;
      fail = failing_;
    }
    if (fail) {
      copy.done(absl::InternalError("fake device: copy failed"));
    } else {
      std::memcpy(copy.dst, copy.src, copy.bytes);
      copy.done(absl::OkStatus());
    }
    copy.done = nullptr;  // drop what the callback holds (a slot) before Drain sees idle
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

void FakeCopyDevice::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

void FakeCopyDevice::Drain() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](FakeCopyDevice* d)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) { return d->queue_.empty() && d->running_ == 0; },
      this));
}

int64_t FakeCopyDevice::pinned_bytes() {
  absl::MutexLock lock(&mu_);
  return pinned_;
}

int64_t FakeCopyDevice::copies_started() {
  absl::MutexLock lock(&mu_);
  return started_;
}

int FakeCopyDevice::max_queued() {
  absl::MutexLock lock(&mu_);
  return max_queued_;
}

}  // namespace npystream
