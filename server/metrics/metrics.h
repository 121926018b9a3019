// Metrics: the daemon's Prometheus registry (prometheus-cpp). Implements the
// RPC, engine, transfer and store metric interfaces; store gauges are read at
// scrape time. The admin port serves Scrape() through a callback, so it does
// not depend on this folder.
#ifndef NPYSTREAM_SERVER_METRICS_METRICS_H_
#define NPYSTREAM_SERVER_METRICS_METRICS_H_

#include <memory>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/engine/inference_engine.h"
#include "server/peers/peers.h"
#include "server/rpc/rpc_metrics.h"
#include "server/store/tensor_store.h"
#include "server/transfer/device_transfer.h"
#include "server/views/views.h"

namespace npystream {

// Thread-safe.
class Metrics : public rpc::RpcMetrics,
                public EngineMetrics,
                public TransferMetrics,
                public StoreMetrics,
                public views::ViewMetrics,
                public peers::ForwardMetrics {
 public:
  Metrics();
  // Store gauges are read from `store` (not owned; it must outlive the
  // scrapes) at each scrape. Call once, before serving.
  void SetStore(TensorStore* store);

  // The Prometheus text exposition of every metric.
  std::string Scrape();

  // rpc::RpcMetrics
  void BytesSent(uint64_t n) override { bytes_sent_->Increment(static_cast<double>(n)); }
  void BytesReceived(uint64_t n) override { bytes_received_->Increment(static_cast<double>(n)); }
  void FetchStarted() override { fetch_active_->Increment(); }
  void FetchEnded() override { fetch_active_->Decrement(); }
  void CallDone(absl::string_view method, int code, double seconds) override;

  // EngineMetrics
  void InferDone(const std::string& model, double seconds) override;
  void SubscribeDropped(const std::string& model, const std::string& layer) override;
  void SubscribeOpened(const std::string& model, const std::string& layer) override;
  void BatchRan(const std::string& model, int64_t rows) override;
  void QueueWaited(const std::string& model, double seconds) override;
  void QueueDepth(const std::string& model, int64_t depth) override;

  // TransferMetrics
  void D2HBytes(uint64_t n) override { d2h_bytes_->Increment(static_cast<double>(n)); }
  void H2DBytes(uint64_t n) override { h2d_bytes_->Increment(static_cast<double>(n)); }

  // StoreMetrics
  void ContiguousCopy(const std::string& device, uint64_t bytes) override;

  // views::ViewMetrics
  void ViewOpened(uint64_t whole_bytes, uint64_t view_bytes) override;

  // peers::ForwardMetrics
  void Forwarded(absl::string_view method, int code) override;

  // Read at each scrape: free staging bytes (unset: 0, the CPU backend).
  void SetStagingFreeSource(std::function<uint64_t()> source) {
    staging_source_ = std::move(source);
  }
  // Exports npystream_gpu_memory_used_bytes{device="cuda:N"} for N < count,
  // read at each scrape with `used(N, &bytes)`. Not called without GPUs.
  void SetGpuMemorySource(int count, std::function<bool(int, uint64_t*)> used);

 private:
  TensorStore* store_ = nullptr;
  std::function<uint64_t()> staging_source_;
  int gpu_count_ = 0;
  std::function<bool(int, uint64_t*)> gpu_used_;
  prometheus::Family<prometheus::Gauge>* gpu_memory_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* durations_;
  prometheus::Family<prometheus::Histogram>* infer_durations_;
  prometheus::Family<prometheus::Counter>* dropped_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Histogram>* queue_duration_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Family<prometheus::Gauge>* store_bytes_;
  prometheus::Family<prometheus::Gauge>* store_budget_;
  prometheus::Counter* bytes_sent_;
  prometheus::Counter* bytes_received_;
  prometheus::Counter* d2h_bytes_;
  prometheus::Counter* h2d_bytes_;
  prometheus::Counter* views_;
  prometheus::Counter* view_bytes_saved_;
  prometheus::Family<prometheus::Counter>* contiguous_copies_;
  prometheus::Family<prometheus::Counter>* contiguous_bytes_;
  prometheus::Gauge* fetch_active_;
  prometheus::Gauge* store_tensors_;
  prometheus::Gauge* staging_free_;
  prometheus::Gauge* shm_bytes_;
  prometheus::Gauge* host_cached_;
  prometheus::Family<prometheus::Counter>* map_requests_;
  prometheus::Family<prometheus::Counter>* forwarded_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_METRICS_METRICS_H_
