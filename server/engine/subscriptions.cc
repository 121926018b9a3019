#include "server/engine/subscriptions.h"

#include <algorithm>

namespace npystream {

bool Subscription::Offer(LiveValue value) {
  std::function<void()> wake;
  LiveValue replaced;  // freed outside the lock
  bool dropped = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    // Publishers number values under the hub's lock but offer them after
    // it, so an older value can arrive after a newer one: it is a drop.
    uint64_t& newest = newest_seq_[value.layer];
    if (value.seq != 0 && value.seq <= newest) {
      replaced = std::move(value);
      return true;
    }
    newest = std::max(newest, value.seq);
    auto it = pending_.find(value.layer);
    if (it != pending_.end()) {
      replaced = std::move(it->second);
      it->second = std::move(value);
      dropped = true;
    } else {
      order_.push_back(value.layer);
      const std::string& layer = order_.back();
      pending_.emplace(layer, std::move(value));
    }
    wake.swap(wake_);
  }
  if (wake) wake();
  return dropped;
}

LiveValue Subscription::TakeOrNotify(std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  if (order_.empty()) {
    if (!closed_) wake_ = std::move(wake);
    return {};
  }
  const std::string layer = order_.front();
  order_.pop_front();
  auto node = pending_.extract(layer);
  return std::move(node.mapped());
}

void Subscription::Close() {
  std::function<void()> wake;
  std::map<std::string, LiveValue> pending;  // freed outside the lock
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    pending.swap(pending_);
    order_.clear();
    wake.swap(wake_);
  }
  if (wake) wake();
}

bool Subscription::closed() {
  absl::MutexLock lock(&mu_);
  return closed_;
}

std::shared_ptr<Subscription> SubscriptionHub::Subscribe(const std::string& model,
                                                         const std::set<std::string>& layers) {
  auto sub = std::make_shared<Subscription>(model, layers);
  absl::MutexLock lock(&mu_);
  subs_.push_back(sub);
  return sub;
}

void SubscriptionHub::Unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  subscription->Close();
  absl::MutexLock lock(&mu_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), subscription), subs_.end());
}

std::set<std::string> SubscriptionHub::LayersWanted(const std::string& model) {
  std::set<std::string> out;
  absl::MutexLock lock(&mu_);
  for (const auto& s : subs_) {
    if (s->model() == model) out.insert(s->layers().begin(), s->layers().end());
  }
  return out;
}

void SubscriptionHub::Publish(const std::string& model, const std::string& layer,
                              const std::shared_ptr<const StoredTensor>& value, double infer_ms) {
  std::vector<std::shared_ptr<Subscription>> targets;
  LiveValue live{layer, 0, infer_ms, value};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& s : subs_) {
      if (s->model() == model && s->layers().count(layer)) targets.push_back(s);
    }
    if (targets.empty()) return;
    live.seq = ++seq_[{model, layer}];
  }
  for (const auto& s : targets) {
    if (s->Offer(live)) {
      {
        absl::MutexLock lock(&mu_);
        ++dropped_[{model, layer}];
      }
      if (on_drop_) on_drop_(model, layer);
    }
  }
}

uint64_t SubscriptionHub::dropped(const std::string& model, const std::string& layer) {
  absl::MutexLock lock(&mu_);
  auto it = dropped_.find({model, layer});
  return it == dropped_.end() ? 0 : it->second;
}

size_t SubscriptionHub::subscriber_count() {
  absl::MutexLock lock(&mu_);
  return subs_.size();
}

}  // namespace npystream
