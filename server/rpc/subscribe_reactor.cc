#include "server/rpc/subscribe_reactor.h"

#include "server/rpc/grpc_status.h"

namespace npystream::rpc {

SubscribeReactor::SubscribeReactor(SubscriptionHub* hub, std::shared_ptr<Subscription> subscription,
                                   const views::Views* views,
                                   std::map<std::string, views::ViewRequest> layer_views,
                                   std::unique_ptr<CallTicket> ticket)
    : hub_(hub),
      subscription_(std::move(subscription)),
      views_(views),
      layer_views_(std::move(layer_views)),
      ticket_(std::move(ticket)),
      liveness_(std::make_shared<Liveness>()) {
  absl::MutexLock lock(&liveness_->mu);
  liveness_->reactor = this;
}

void SubscribeReactor::Pump() {
  NpyFramer* framer = nullptr;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    while (framer_ == nullptr || framer_->done()) {
      framer_.reset();
      auto value = subscription_->TakeOrNotify([liveness = liveness_] {
        absl::MutexLock lock(&liveness->mu);
        if (liveness->reactor != nullptr) liveness->reactor->Pump();
      });
      if (value.tensor == nullptr) {
        if (!subscription_->closed()) return;
        break;  // closed: finish below, outside the lock
      }
      auto view = layer_views_.find(value.tensor->info().name);
      auto source = views_->Open(std::move(value.tensor),
                                 view == layer_views_.end() ? views::ViewRequest{} : view->second);
      if (absl::IsInvalidArgument(source.status())) {
        refused = source.status();  // the layer's view does not fit its values
        break;
      }
      if (!source.ok()) continue;  // this value cannot be read here: skip it
      framer_ = std::make_unique<NpyFramer>(*std::move(source), 0);
    }
    if (framer_ == nullptr) {
      if (finished_) return;
      finished_ = true;
    } else {
      writing_ = true;
      framer = framer_.get();
    }
  }
  if (framer == nullptr) {
    hub_->Unsubscribe(subscription_);
    Finish(refused.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "subscription closed")
                        : ToGrpcStatus(refused));
    return;
  }
  // Outside the lock: the write may complete (and call OnWriteDone) at once.
  framer->Next(&buffer_, [this](const absl::Status& status, uint64_t bytes) {
    if (!status.ok()) {
      FinishOnce(ToGrpcStatus(status));
      return;
    }
    ticket_->AddSent(bytes);
    StartWrite(&buffer_);
  });
}

void SubscribeReactor::OnWriteDone(bool ok) {
  buffer_.Clear();
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
  }
  if (!ok) {
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "subscriber went away"));
    return;
  }
  Pump();
}

void SubscribeReactor::FinishOnce(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
  }
  hub_->Unsubscribe(subscription_);
  Finish(status);
}

void SubscribeReactor::OnCancel() { hub_->Unsubscribe(subscription_); }

void SubscribeReactor::OnDone() {
  {
    absl::MutexLock lock(&liveness_->mu);
    liveness_->reactor = nullptr;
  }
  hub_->Unsubscribe(subscription_);
  ticket_->Done(0);
  delete this;
}

}  // namespace npystream::rpc
