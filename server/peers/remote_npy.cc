#include "server/peers/remote_npy.h"

#include <atomic>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace npystream::peers {

// The owner's call. It holds one hold (grpc's AddHold) while more reads may
// be started: its OnDone, which deletes it, cannot run before the hold is
// removed, so the reader never starts a read on a finished call.
class RemoteUpstream : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RemoteUpstream(std::shared_ptr<RemoteNpy::State> state) : state_(std::move(state)) {}
  void Start();
  void OnReadInitialMetadataDone(bool ok) override {
    if (ok) answered_.store(true);
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  friend class RemoteNpy;
  std::shared_ptr<RemoteNpy::State> state_;
  grpc::ByteBuffer in_;
  std::atomic<bool> answered_{false};
};

struct RemoteNpy::State {
  Peers* peers = nullptr;
  Peers::Call call;
  grpc::ByteBuffer request;
  RemoteUpstream* upstream = nullptr;  // usable while the hold is kept

  absl::Mutex mu;
  Ready ready ABSL_GUARDED_BY(mu);  // until the first message
  std::function<void(absl::StatusOr<std::string>)> waiting ABSL_GUARDED_BY(mu);
  npystream::v1::TensorInfo info;                          // set before `ready` runs, then constant
  std::optional<std::string> pending ABSL_GUARDED_BY(mu);  // read, not yet taken
  bool reading ABSL_GUARDED_BY(mu) = false;
  bool stream_over ABSL_GUARDED_BY(mu) = false;  // no message follows
  bool hold_kept ABSL_GUARDED_BY(mu) = true;
  bool ended ABSL_GUARDED_BY(mu) = false;  // OnDone ran: `status` is set
  absl::Status status ABSL_GUARDED_BY(mu);
};

void RemoteUpstream::Start() {
  RemoteNpy::State* s = state_.get();
  s->call.stub->PrepareBidiStreamingCall(s->call.context.get(), "/npystream.v1.Tensors/Fetch",
                                         grpc::StubOptions(), this);
  AddHold();
  {
    absl::MutexLock lock(&s->mu);
    s->reading = true;
  }
  StartRead(&in_);
  StartWriteLast(&s->request, grpc::WriteOptions());
  StartCall();
}

void RemoteUpstream::OnReadDone(bool ok) {
  RemoteNpy::State* s = state_.get();
  npystream::v1::FetchResponse message;
  bool malformed = false;
  if (ok) {
    grpc::Slice flat;
    malformed = !in_.DumpToSingleSlice(&flat).ok() ||
                !message.ParseFromArray(flat.begin(), static_cast<int>(flat.size()));
    in_.Clear();
  }
  RemoteNpy::Ready ready;
  std::function<void(absl::StatusOr<std::string>)> waiting;
  bool release = false;
  {
    absl::MutexLock lock(&s->mu);
    s->reading = false;
    if (!ok || malformed) {
      // The status (OnDone) settles what the reader is told.
      s->stream_over = true;
      release = s->hold_kept;
      s->hold_kept = false;
    } else if (s->ready) {
      s->info = message.info();
      ready = std::move(s->ready);
      s->ready = nullptr;
      s->pending = std::move(*message.mutable_data());
    } else if (s->waiting) {
      waiting = std::move(s->waiting);
      s->waiting = nullptr;
    } else {
      s->pending = std::move(*message.mutable_data());
    }
  }
  if (malformed) s->call.context->TryCancel();
  if (ready) ready(std::make_unique<RemoteNpy>(state_));
  if (waiting) waiting(std::move(*message.mutable_data()));
  if (release) RemoveHold();  // may run OnDone, and delete this
}

void RemoteUpstream::OnDone(const grpc::Status& status) {
  RemoteNpy::State* s = state_.get();
  const absl::Status final = FromGrpcStatus(s->peers->Finish(s->call, status, answered_.load()));
  RemoteNpy::Ready ready;
  std::function<void(absl::StatusOr<std::string>)> waiting;
  {
    absl::MutexLock lock(&s->mu);
    s->ended = true;
    s->status = final;
    s->upstream = nullptr;
    ready = std::move(s->ready);
    s->ready = nullptr;
    waiting = std::move(s->waiting);
    s->waiting = nullptr;
  }
  if (ready) {
    ready(final.ok() ? absl::DataLossError(absl::StrCat("replica '", s->call.owner,
                                                        "' ended the fetch without a reply"))
                     : final);
  }
  if (waiting) waiting(final.ok() ? absl::StatusOr<std::string>(std::string()) : final);
  delete this;
}

void RemoteNpy::Open(Peers* peers, Peers::Call call, const npystream::v1::FetchRequest& request,
                     Ready ready) {
  auto state = std::make_shared<State>();
  state->peers = peers;
  state->call = std::move(call);
  grpc::Slice bytes(request.SerializeAsString());
  state->request = grpc::ByteBuffer(&bytes, 1);
  {
    absl::MutexLock lock(&state->mu);
    state->ready = std::move(ready);
  }
  auto* upstream = new RemoteUpstream(state);
  state->upstream = upstream;
  upstream->Start();
}

RemoteNpy::~RemoteNpy() {
  RemoteUpstream* upstream = nullptr;
  {
    absl::MutexLock lock(&state_->mu);
    if (state_->hold_kept) upstream = state_->upstream;
    state_->hold_kept = false;
  }
  if (upstream != nullptr) {
    state_->call.context->TryCancel();
    upstream->RemoveHold();
  }
}

const npystream::v1::TensorInfo& RemoteNpy::info() const { return state_->info; }

void RemoteNpy::Next(std::function<void(absl::StatusOr<std::string>)> done) {
  State* s = state_.get();
  std::optional<absl::StatusOr<std::string>> now;
  RemoteUpstream* read = nullptr;
  {
    absl::MutexLock lock(&s->mu);
    if (s->pending) {
      now = std::move(*s->pending);
      s->pending.reset();
    } else if (s->ended) {
      now = s->status.ok() ? absl::StatusOr<std::string>(std::string()) : s->status;
    }
    if (!now) {
      s->waiting = std::move(done);
      if (!s->stream_over && !s->reading) {
        s->reading = true;
        read = s->upstream;
      }
    }
  }
  if (now) {
    done(*std::move(now));  // NOLINT(bugprone-use-after-move): moved only without `now`
    return;
  }
  if (read != nullptr) read->StartRead(&read->in_);
}

}  // namespace npystream::peers
