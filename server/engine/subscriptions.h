// Subscriptions: live activations fanned out to subscribers, newest value
// per layer only, so a slow subscriber never queues or slows Infer.
#ifndef NPYSTREAM_SERVER_ENGINE_SUBSCRIPTIONS_H_
#define NPYSTREAM_SERVER_ENGINE_SUBSCRIPTIONS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store/tensor_store.h"

namespace npystream {

// One value a layer produced, as a subscriber receives it.
struct LiveValue {
  std::string layer;
  uint64_t seq = 0;     // per (model, layer): 1, 2, ... over the values published
  double infer_ms = 0;  // compute time of the Infer call that produced it
  std::shared_ptr<const StoredTensor> tensor;  // null: no value
};

// One subscriber's pending values. Thread-safe.
class Subscription {
 public:
  Subscription(std::string model, std::set<std::string> layers)
      : model_(std::move(model)), layers_(std::move(layers)) {}

  const std::string& model() const { return model_; }
  const std::set<std::string>& layers() const { return layers_; }

  // Makes `value` the pending value of its layer. Returns true when it
  // replaced one the subscriber had not taken, or when a value of its layer
  // with a higher seq was already offered and `value` is discarded (drops).
  bool Offer(LiveValue value);
  // Pops the pending value that waited longest. When there is none, returns
  // a value with a null tensor and keeps `wake`, which is called once
  // (without locks held, on the offering thread) when a value arrives or the
  // subscription closes.
  LiveValue TakeOrNotify(std::function<void()> wake);
  void Close();
  bool closed();

 private:
  const std::string model_;
  const std::set<std::string> layers_;
  absl::Mutex mu_;
  std::map<std::string, LiveValue> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> newest_seq_ ABSL_GUARDED_BY(mu_);  // offered, per layer
  std::function<void()> wake_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Thread-safe registry of subscriptions by model.
class SubscriptionHub {
 public:
  // Called with (model, layer) for every dropped value. May be empty.
  explicit SubscriptionHub(std::function<void(const std::string&, const std::string&)> on_drop = {})
      : on_drop_(std::move(on_drop)) {}

  std::shared_ptr<Subscription> Subscribe(const std::string& model,
                                          const std::set<std::string>& layers);
  // Closes and forgets `subscription`.
  void Unsubscribe(const std::shared_ptr<Subscription>& subscription);
  // Layers some subscriber of `model` wants.
  std::set<std::string> LayersWanted(const std::string& model);
  // Hands `value` (with the next seq of (model, layer)) to every subscriber
  // of (model, layer); never blocks.
  void Publish(const std::string& model, const std::string& layer,
               const std::shared_ptr<const StoredTensor>& value, double infer_ms = 0);
  uint64_t dropped(const std::string& model, const std::string& layer);
  size_t subscriber_count();

 private:
  const std::function<void(const std::string&, const std::string&)> on_drop_;
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subs_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> dropped_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> seq_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_SUBSCRIPTIONS_H_
