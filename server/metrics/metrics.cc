#include "server/metrics/metrics.h"

#include "absl/status/status.h"
#include "prometheus/text_serializer.h"

namespace npystream {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *b;
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = *registry_;
  requests_ = &BuildCounter()
                   .Name("npystream_rpc_requests_total")
                   .Help("gRPC calls finished, by method and status code")
                   .Register(r);
  durations_ = &BuildHistogram()
                    .Name("npystream_rpc_duration_seconds")
                    .Help("gRPC call duration, by method")
                    .Register(r);
  batch_size_ = &BuildHistogram()
                     .Name("npystream_batch_size")
                     .Help("Rows in each dynamically batched forward pass, by model")
                     .Register(r);
  queue_duration_ = &BuildHistogram()
                         .Name("npystream_queue_duration_seconds")
                         .Help("Time a request waited for its batch, by model")
                         .Register(r);
  queue_depth_ = &BuildGauge()
                      .Name("npystream_queue_depth")
                      .Help("Requests queued for a batch now, by model")
                      .Register(r);
  infer_durations_ = &BuildHistogram()
                          .Name("npystream_infer_duration_seconds")
                          .Help("Infer duration (inputs to stored outputs), by model")
                          .Register(r);
  dropped_ = &BuildCounter()
                  .Name("npystream_subscribe_dropped_total")
                  .Help("Subscription values replaced before the subscriber took them")
                  .Register(r);
  store_bytes_ = &BuildGauge()
                      .Name("npystream_store_bytes")
                      .Help("Bytes of resident tensors, by device")
                      .Register(r);
  store_budget_ = &BuildGauge()
                       .Name("npystream_store_budget_bytes")
                       .Help("Store budget, by device")
                       .Register(r);
  bytes_sent_ = &BuildCounter()
                     .Name("npystream_bytes_sent_total")
                     .Help(".npy bytes sent by Fetch and Subscribe")
                     .Register(r)
                     .Add({});
  bytes_received_ = &BuildCounter()
                         .Name("npystream_bytes_received_total")
                         .Help(".npy bytes received by Put and inline Infer inputs")
                         .Register(r)
                         .Add({});
  d2h_bytes_ = &BuildCounter()
                    .Name("npystream_d2h_bytes_total")
                    .Help("Bytes copied device-to-host by the transfer engine")
                    .Register(r)
                    .Add({});
  h2d_bytes_ = &BuildCounter()
                    .Name("npystream_h2d_bytes_total")
                    .Help("Bytes copied host-to-device by the transfer engine (Put to a GPU)")
                    .Register(r)
                    .Add({});
  views_ = &BuildCounter()
                .Name("npystream_views_total")
                .Help("Fetches and subscription values sent as a view (index, dtype, pool)")
                .Register(r)
                .Add({});
  view_bytes_saved_ =
      &BuildCounter()
           .Name("npystream_view_bytes_saved_total")
           .Help("Whole-tensor payload bytes minus view payload bytes, per view sent")
           .Register(r)
           .Add({});
  contiguous_copies_ = &BuildCounter()
                            .Name("npystream_contiguous_copies_total")
                            .Help("Strided tensors made contiguous on their device, by device")
                            .Register(r);
  contiguous_bytes_ = &BuildCounter()
                           .Name("npystream_contiguous_copy_bytes_total")
                           .Help("Bytes of those on-device contiguous copies, by device")
                           .Register(r);
  fetch_active_ = &BuildGauge()
                       .Name("npystream_fetch_active")
                       .Help("Fetch streams in progress")
                       .Register(r)
                       .Add({});
  store_tensors_ = &BuildGauge()
                        .Name("npystream_store_tensors")
                        .Help("Tensors with a live handle")
                        .Register(r)
                        .Add({});
  host_cached_ = &BuildGauge()
                      .Name("npystream_host_memory_cached_bytes")
                      .Help("Freed host tensor memory kept for reuse (given back when idle)")
                      .Register(r)
                      .Add({});
  shm_bytes_ = &BuildGauge()
                    .Name("npystream_shm_bytes")
                    .Help("Bytes of tensor files in --shm-dir (stored tensors and Map copies)")
                    .Register(r)
                    .Add({});
  map_requests_ = &BuildCounter()
                       .Name("npystream_map_requests_total")
                       .Help("Same-host Map calls, by outcome")
                       .Register(r);
  forwarded_ = &BuildCounter()
                    .Name("npystream_forwarded_total")
                    .Help("Calls on another replica's handle relayed to it, by method and outcome")
                    .Register(r);
  staging_free_ = &BuildGauge()
                       .Name("npystream_staging_ring_free_bytes")
                       .Help("Free bytes in the pinned staging ring (0: CPU backend, no ring)")
                       .Register(r)
                       .Add({});
}

void Metrics::SetStore(TensorStore* store) {
  store_ = store;
  store_budget_->Add({{"device", "cpu"}}).Set(static_cast<double>(store_->budget().limit()));
  store_bytes_->Add({{"device", "cpu"}}).Set(0);
}

void Metrics::ContiguousCopy(const std::string& device, uint64_t bytes) {
  contiguous_copies_->Add({{"device", device}}).Increment();
  contiguous_bytes_->Add({{"device", device}}).Increment(static_cast<double>(bytes));
}

void Metrics::SetGpuMemorySource(int count, std::function<bool(int, uint64_t*)> used) {
  gpu_count_ = count;
  gpu_used_ = std::move(used);
  gpu_memory_ = &prometheus::BuildGauge()
                     .Name("npystream_gpu_memory_used_bytes")
                     .Help("GPU memory in use (all processes), by device")
                     .Register(*registry_);
}

void Metrics::CallDone(absl::string_view method, int code, double seconds) {
  const std::string m(method);
  requests_
      ->Add(
          {{"method", m}, {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
      .Increment();
  durations_->Add({{"method", m}}, LatencyBuckets()).Observe(seconds);
  if (m == "Map") {
    map_requests_->Add({{"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
        .Increment();
  }
}

void Metrics::Forwarded(absl::string_view method, int code) {
  forwarded_
      ->Add({{"method", std::string(method)},
             {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
      .Increment();
}

void Metrics::InferDone(const std::string& model, double seconds) {
  infer_durations_->Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}

void Metrics::BatchRan(const std::string& model, int64_t rows) {
  static const auto* buckets =
      new prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256};
  batch_size_->Add({{"model", model}}, *buckets).Observe(static_cast<double>(rows));
}

void Metrics::QueueWaited(const std::string& model, double seconds) {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1};
  queue_duration_->Add({{"model", model}}, *buckets).Observe(seconds);
}

void Metrics::QueueDepth(const std::string& model, int64_t depth) {
  queue_depth_->Add({{"model", model}}).Set(static_cast<double>(depth));
}

void Metrics::SubscribeOpened(const std::string& model, const std::string& layer) {
  dropped_->Add({{"model", model}, {"layer", layer}});
}

void Metrics::SubscribeDropped(const std::string& model, const std::string& layer) {
  dropped_->Add({{"model", model}, {"layer", layer}}).Increment();
}

std::string Metrics::Scrape() {
  if (store_ != nullptr) store_tensors_->Set(static_cast<double>(store_->size()));
  if (store_ != nullptr && store_->shm() != nullptr) {
    shm_bytes_->Set(static_cast<double>(store_->shm()->bytes()));
  }
  if (store_ != nullptr && store_->host_memory() != nullptr) {
    host_cached_->Set(static_cast<double>(store_->host_memory()->cached_bytes()));
  }
  if (staging_source_) staging_free_->Set(static_cast<double>(staging_source_()));
  for (int i = 0; i < gpu_count_; ++i) {
    uint64_t used = 0;
    if (gpu_used_(i, &used)) {
      gpu_memory_->Add({{"device", "cuda:" + std::to_string(i)}}).Set(static_cast<double>(used));
    }
  }
  if (store_ != nullptr) {
    for (const auto& [device, used] : store_->budget().UsedByDevice()) {
      store_bytes_->Add({{"device", device}}).Set(static_cast<double>(used));
      store_budget_->Add({{"device", device}}).Set(static_cast<double>(store_->budget().limit()));
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::ViewOpened(uint64_t whole_bytes, uint64_t view_bytes) {
  views_->Increment();
  // A cast to a wider dtype can make a view larger than its tensor.
  if (whole_bytes > view_bytes)
    view_bytes_saved_->Increment(static_cast<double>(whole_bytes - view_bytes));
}

}  // namespace npystream
