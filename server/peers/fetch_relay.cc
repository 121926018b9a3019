#include "server/peers/fetch_relay.h"

#include <utility>

namespace npystream::peers {

FetchRelay::FetchRelay(Peers* peers, Peers::Call call, const grpc::ByteBuffer& request,
                       std::function<void(uint64_t)> sent, DoneCallback done)
    : peers_(peers),
      call_(std::move(call)),
      request_(request),
      sent_(std::move(sent)),
      done_(std::move(done)) {}

void FetchRelay::Start() {
  call_.stub->PrepareBidiStreamingCall(call_.context.get(), "/npystream.v1.Tensors/Fetch",
                                       grpc::StubOptions(), &upstream_);
  {
    absl::MutexLock lock(&mu_);
    reading_ = true;
  }
  upstream_.StartRead(&in_);
  upstream_.StartWriteLast(&request_, grpc::WriteOptions());
  upstream_.StartCall();
}

void FetchRelay::Upstream::OnReadInitialMetadataDone(bool ok) {
  if (ok) relay_->answered_.store(true);
}

void FetchRelay::Upstream::OnReadDone(bool ok) {
  FetchRelay* r = relay_;
  Next next;
  {
    absl::MutexLock lock(&r->mu_);
    r->reading_ = false;
    if (ok) {
      r->have_next_ = true;
      if (!r->writing_ && !r->client_gone_) r->WriteLocked(&next);
    }
    // Not ok: the owner's stream ended; its status follows in OnDone.
    r->MaybeFinishLocked(&next);
  }
  r->Run(next);
}

void FetchRelay::WriteLocked(Next* next) {
  out_.Clear();
  out_.Swap(&in_);
  have_next_ = false;
  const uint64_t n = out_.Length();
  bytes_ += n;
  if (sent_) sent_(n);
  writing_ = true;
  reading_ = true;  // one message ahead of the client
  next->write = true;
}

void FetchRelay::OnWriteDone(bool ok) {
  Next next;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) client_gone_ = true;
    if (ok && have_next_) WriteLocked(&next);
    MaybeFinishLocked(&next);
  }
  if (!ok) call_.context->TryCancel();
  Run(next);
}

void FetchRelay::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    client_gone_ = true;
  }
  call_.context->TryCancel();
}

void FetchRelay::Upstream::OnDone(const grpc::Status& status) {
  FetchRelay* r = relay_;
  Next next;
  {
    absl::MutexLock lock(&r->mu_);
    r->owner_done_ = true;
    r->owner_status_ = status;
    r->MaybeFinishLocked(&next);
  }
  r->Run(next);
  r->Unref();
}

void FetchRelay::MaybeFinishLocked(Next* next) {
  // The client's call ends once the owner's has and every message read was
  // passed on (or the client is gone).
  if (finished_ || !owner_done_ || writing_ || (have_next_ && !client_gone_)) return;
  finished_ = true;
  final_ = peers_->Finish(call_, owner_status_, answered_.load());
  if (client_gone_ && final_.ok()) {
    final_ = grpc::Status(grpc::StatusCode::CANCELLED, "fetch cancelled");
  }
  next->finish = true;
  next->status = final_;
}

void FetchRelay::Run(const Next& next) {
  if (next.write) {
    StartWrite(&out_);
    upstream_.StartRead(&in_);
  }
  if (next.finish) Finish(next.status);
}

void FetchRelay::OnDone() {
  {
    absl::MutexLock lock(&mu_);
    if (done_) done_(final_, bytes_);
  }
  Unref();
}

void FetchRelay::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace npystream::peers
