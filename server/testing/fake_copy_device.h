// FakeCopyDevice: a CopyDevice over host memory whose copies (either
// direction) complete on worker threads in random order (across and within
// streams), for tests.
#ifndef NPYSTREAM_SERVER_TESTING_FAKE_COPY_DEVICE_H_
#define NPYSTREAM_SERVER_TESTING_FAKE_COPY_DEVICE_H_

#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/transfer/copy_device.h"

namespace npystream {

// Thread-safe. "Device pointers" are host pointers.
class FakeCopyDevice : public CopyDevice {
 public:
  explicit FakeCopyDevice(int streams = 4, unsigned seed = 1);
  ~FakeCopyDevice() override;

  absl::StatusOr<void*> AllocPinned(size_t bytes) override;
  void FreePinned(void* p) override;
  int num_streams() const override { return streams_; }
  void CopyToHostAsync(void* host_dst, const void* device_src, size_t bytes, int stream,
                       std::function<void(absl::Status)> done) override;
  void CopyToDeviceAsync(void* device_dst, const void* host_src, size_t bytes, int stream,
                         std::function<void(absl::Status)> done) override;

  // While failing, copies complete with INTERNAL and copy nothing.
  void SetFailing(bool failing);
  // While paused, copies queue up and none completes.
  void SetPaused(bool paused);
  // Blocks until no copy is queued or running.
  void Drain();
  int64_t pinned_bytes();
  int64_t copies_started();
  int max_queued();

 private:
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
    std::function<void(absl::Status)> done;
  };
  void Loop();

  const int streams_;
  absl::Mutex mu_;
  std::vector<Copy> queue_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pinned_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t started_ ABSL_GUARDED_BY(mu_) = 0;
  int max_queued_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937 rng_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TESTING_FAKE_COPY_DEVICE_H_
