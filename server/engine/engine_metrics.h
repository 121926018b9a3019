// EngineMetrics: what the inference engine reports; implemented by the
// daemon's metrics registry. Thread-safe; every method is cheap.
#ifndef NPYSTREAM_SERVER_ENGINE_ENGINE_METRICS_H_
#define NPYSTREAM_SERVER_ENGINE_ENGINE_METRICS_H_

#include <cstdint>
#include <string>

namespace npystream {

class EngineMetrics {
 public:
  virtual ~EngineMetrics() = default;
  virtual void InferDone(const std::string& model, double seconds) = 0;
  virtual void SubscribeDropped(const std::string& model, const std::string& layer) = 0;
  // A subscription to `layer` began: its drop count exists from now on (at 0).
  virtual void SubscribeOpened(const std::string& model, const std::string& layer) = 0;
  // Dynamic batching: one forward pass of `rows` rows; a request's wait in
  // the queue; requests queued now.
  virtual void BatchRan(const std::string& model, int64_t rows) = 0;
  virtual void QueueWaited(const std::string& model, double seconds) = 0;
  virtual void QueueDepth(const std::string& model, int64_t depth) = 0;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_ENGINE_METRICS_H_
