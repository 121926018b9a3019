// CopyDevice over the CUDA runtime: cudaHostAlloc'd staging, K non-blocking
// streams, cudaMemcpyAsync per chunk (either direction, ordered after the
// legacy default stream) and an event recorded after it; one
// thread per stream waits on that stream's events in order and runs the
// completion callbacks.
#include "absl/strings/str_cat.h"
#include "server/transfer/copy_device.h"

#ifdef NPYSTREAM_WITH_CUDA
#include <cuda_runtime_api.h>

#include <deque>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#endif

namespace npystream {

#ifdef NPYSTREAM_WITH_CUDA
namespace {

absl::Status CudaError(const char* what, cudaError_t err) {
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

class CudaCopyDevice : public CopyDevice {
 public:
  CudaCopyDevice(int index, int streams) : index_(index), lanes_(streams) {}

  absl::Status Init() {
    cudaError_t err = cudaSetDevice(index_);
    if (err != cudaSuccess) return CudaError("cudaSetDevice", err);
    for (Lane& lane : lanes_) {
      err = cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking);
      if (err != cudaSuccess) return CudaError("cudaStreamCreate", err);
      {
        absl::MutexLock lock(&lane.mu);
        err = cudaEventCreateWithFlags(&lane.after, cudaEventDisableTiming);
      }
      if (err != cudaSuccess) return CudaError("cudaEventCreate", err);
      lane.thread = std::thread([this, &lane] { Wait(&lane); });
    }
    return absl::OkStatus();
  }

  ~CudaCopyDevice() override {
    for (Lane& lane : lanes_) {
      {
        absl::MutexLock lock(&lane.mu);
        lane.stopping = true;
      }
      if (lane.thread.joinable()) lane.thread.join();
      if (lane.stream != nullptr) cudaStreamDestroy(lane.stream);
      absl::MutexLock lock(&lane.mu);
      if (lane.after != nullptr) cudaEventDestroy(lane.after);
    }
  }

  absl::StatusOr<void*> AllocPinned(size_t bytes) override {
    cudaSetDevice(index_);
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (err != cudaSuccess) return CudaError("cudaHostAlloc", err);
    return p;
  }

  void FreePinned(void* p) override { cudaFreeHost(p); }

  int num_streams() const override { return static_cast<int>(lanes_.size()); }

  void CopyToHostAsync(void* host_dst, const void* device_src, size_t bytes, int stream,
                       std::function<void(absl::Status)> done) override {
    Enqueue(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream, std::move(done));
  }

  void CopyToDeviceAsync(void* device_dst, const void* host_src, size_t bytes, int stream,
                         std::function<void(absl::Status)> done) override {
    Enqueue(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream, std::move(done));
  }

 private:
  struct Pending {
    cudaEvent_t event;
    cudaError_t error;
    cudaMemcpyKind kind;
    std::function<void(absl::Status)> done;
  };
  struct Lane {
    cudaStream_t stream = nullptr;
    absl::Mutex mu;
    cudaEvent_t after ABSL_GUARDED_BY(mu) = nullptr;  // reused: waits capture it
    std::deque<Pending> queue ABSL_GUARDED_BY(mu);
    bool stopping ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };

  // The copy waits (on the device, not here) for what LibTorch queued on the
  // legacy default stream: the kernels that produced a tensor being fetched,
  // or that last used memory a Put is about to overwrite.
  void Enqueue(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, int stream,
               std::function<void(absl::Status)> done) {
    Lane& lane = lanes_[static_cast<size_t>(stream) % lanes_.size()];
    cudaSetDevice(index_);
    cudaEvent_t event = nullptr;
    cudaError_t err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    absl::MutexLock lock(&lane.mu);
    if (err == cudaSuccess) err = cudaEventRecord(lane.after, cudaStreamLegacy);
    if (err == cudaSuccess) err = cudaStreamWaitEvent(lane.stream, lane.after, 0);
    if (err == cudaSuccess) err = cudaMemcpyAsync(dst, src, bytes, kind, lane.stream);
    if (err == cudaSuccess) err = cudaEventRecord(event, lane.stream);
    lane.queue.push_back(Pending{event, err, kind, std::move(done)});
  }

  void Wait(Lane* lane) {
    cudaSetDevice(index_);
    for (;;) {
      Pending p;
      {
        absl::MutexLock lock(&lane->mu);
        lane->mu.Await(absl::Condition(
            +[](Lane* l)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu) { return l->stopping || !l->queue.empty(); },
            lane));
        if (lane->queue.empty()) return;
        p = std::move(lane->queue.front());
        lane->queue.pop_front();
      }
      cudaError_t err = p.error;
      if (err == cudaSuccess) err = cudaEventSynchronize(p.event);
      if (p.event != nullptr) cudaEventDestroy(p.event);
      p.done(err == cudaSuccess
                 ? absl::OkStatus()
                 : CudaError(p.kind == cudaMemcpyDeviceToHost ? "device-to-host copy"
                                                              : "host-to-device copy",
                             err));
    }
  }

  const int index_;
  std::vector<Lane> lanes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CopyDevice>> NewCudaCopyDevice(int index, int streams) {
  auto device = std::make_unique<CudaCopyDevice>(index, std::max(1, streams));
  absl::Status s = device->Init();
  if (!s.ok()) return absl::UnavailableError(s.message());
  return std::unique_ptr<CopyDevice>(std::move(device));
}

#else

absl::StatusOr<std::unique_ptr<CopyDevice>> NewCudaCopyDevice(int index, int streams) {
  (void)streams;
  return absl::UnavailableError(
      absl::StrCat("cuda:", index, ": npystreamd was built without the CUDA toolkit"));
}

#endif

}  // namespace npystream
