// SubscribeReactor: streams a Subscription's values, each as one framed .npy.
#ifndef NPYSTREAM_SERVER_RPC_SUBSCRIBE_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_SUBSCRIBE_REACTOR_H_

#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/engine/subscriptions.h"
#include "server/rpc/call_gate.h"
#include "server/rpc/npy_framer.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream::rpc {

// Owns itself: deletes itself in OnDone, after which no wake-up reaches it.
class SubscribeReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // `layer_views`: the view each listed layer is sent as (others whole); a
  // view a value's shape refuses ends the stream with INVALID_ARGUMENT.
  SubscribeReactor(SubscriptionHub* hub, std::shared_ptr<Subscription> subscription,
                   const views::Views* views, std::map<std::string, views::ViewRequest> layer_views,
                   std::unique_ptr<CallTicket> ticket);
  void Start() { Pump(); }

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Lets a wake-up from a publisher's thread find the reactor, or find that
  // it is gone.
  struct Liveness {
    absl::Mutex mu;
    SubscribeReactor* reactor ABSL_GUARDED_BY(mu);
  };
  // Starts the next write if none is in flight and a value is pending.
  void Pump();
  void FinishOnce(const grpc::Status& status);

  SubscriptionHub* const hub_;
  const std::shared_ptr<Subscription> subscription_;
  const views::Views* const views_;
  const std::map<std::string, views::ViewRequest> layer_views_;
  const std::unique_ptr<CallTicket> ticket_;
  const std::shared_ptr<Liveness> liveness_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<NpyFramer> framer_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer buffer_;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_SUBSCRIBE_REACTOR_H_
