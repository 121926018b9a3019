// FetchRelay: a Fetch for another replica's handle, relayed to its owner.
// The owner's messages are passed on unchanged as they arrive.
#ifndef NPYSTREAM_SERVER_PEERS_FETCH_RELAY_H_
#define NPYSTREAM_SERVER_PEERS_FETCH_RELAY_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/peers/peers.h"

namespace npystream::peers {

// Owns itself: deleted once both the client's call and the owner's are done.
// Flow control: one owner message is read ahead of the one being written,
// and the next read starts only when a write completed, so a slow client
// slows the owner through HTTP/2's window. A client that goes away cancels
// the owner's call (its pin is dropped there at once).
class FetchRelay : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Called once, as the relayed call ends: the status sent to the client and
  // the bytes passed on. `sent` reports progress per message.
  using DoneCallback = std::function<void(const grpc::Status& status, uint64_t bytes)>;
  FetchRelay(Peers* peers, Peers::Call call, const grpc::ByteBuffer& request,
             std::function<void(uint64_t)> sent, DoneCallback done);
  // Starts the owner's call; call once, right after construction.
  void Start();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Upstream : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(FetchRelay* relay) : relay_(relay) {}
    void OnReadInitialMetadataDone(bool ok) override;
    void OnReadDone(bool ok) override;
    void OnDone(const grpc::Status& status) override;

   private:
    FetchRelay* const relay_;
  };

  // What to start once mu_ is released (gRPC may run a reaction inline in
  // the thread that starts an operation).
  struct Next {
    bool write = false;  // out_ to the client, and the owner's next message into in_
    bool finish = false;
    grpc::Status status;
  };
  void WriteLocked(Next* next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishLocked(Next* next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(const Next& next);
  void Unref();

  Peers* const peers_;
  Peers::Call call_;
  grpc::ByteBuffer request_;
  const std::function<void(uint64_t)> sent_;
  const DoneCallback done_;
  Upstream upstream_{this};
  std::atomic<int> refs_{2};  // the client's call and the owner's
  std::atomic<bool> answered_{false};

  absl::Mutex mu_;
  grpc::ByteBuffer in_ ABSL_GUARDED_BY(mu_);     // being read from the owner
  grpc::ByteBuffer out_ ABSL_GUARDED_BY(mu_);    // being written to the client
  bool have_next_ ABSL_GUARDED_BY(mu_) = false;  // in_ holds a read message
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool client_gone_ ABSL_GUARDED_BY(mu_) = false;
  bool owner_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status owner_status_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace npystream::peers

#endif  // NPYSTREAM_SERVER_PEERS_FETCH_RELAY_H_
