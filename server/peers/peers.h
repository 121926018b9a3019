// Peers: how this daemon reaches the other replicas of one service
// (--peer-address) to relay calls on their handles for clients that cannot
// route (a browser, curl, tritonclient, an old client).
#ifndef NPYSTREAM_SERVER_PEERS_PEERS_H_
#define NPYSTREAM_SERVER_PEERS_PEERS_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace npystream::peers {

// Metadata that marks a relayed call; its value is the relaying replica.
inline constexpr char kForwardedByKey[] = "npystream-forwarded-by";

// The owner's status as this daemon's (same code, same message): the one
// place grpc::Status becomes absl::Status (rpc/grpc_status.h goes back).
absl::Status FromGrpcStatus(const grpc::Status& status);

// What relaying reports. Thread-safe; cheap; never blocks.
class ForwardMetrics {
 public:
  virtual ~ForwardMetrics() = default;
  // One relayed call ended: method ("Fetch"), canonical code.
  virtual void Forwarded(absl::string_view method, int code) = 0;
};

// Thread-safe.
class Peers {
 public:
  struct Options {
    std::string replica;           // this daemon's id
    std::string address_template;  // contains "{replica}"
    // How long connecting to an owner may take before its calls fail
    // UNAVAILABLE (--peer-connect-timeout).
    absl::Duration connect_timeout = absl::Seconds(2);
    // The daemon's own client certificate with mTLS; null: insecure.
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    ForwardMetrics* metrics = nullptr;  // not owned; may be null
  };
  // INVALID_ARGUMENT when the template lacks "{replica}" or the replica id
  // is empty.
  static absl::StatusOr<std::unique_ptr<Peers>> Create(const Options& options);

  // The replica that made `handle` ("…~R") when it is not this one and R is a
  // valid replica id; "" for this replica's and user-named handles.
  std::string OwnerElsewhere(absl::string_view handle) const;
  // The template with `replica` in place of "{replica}".
  std::string AddressOf(absl::string_view replica) const;
  const std::string& replica() const { return options_.replica; }

  // One relayed call to `owner`: its client context carries the caller's
  // authorization and kForwardedByKey. The stub stays valid while `stub`
  // is held, even if the peer's channel is closed meanwhile.
  struct Call {
    std::string method;  // "Fetch", for the metric
    std::string owner;
    std::string address;
    std::shared_ptr<grpc::GenericStub> stub;
    std::unique_ptr<grpc::ClientContext> context;
  };
  // FAILED_PRECONDITION naming both replicas when `caller` was itself
  // relayed (no second hop).
  absl::StatusOr<Call> Open(const grpc::CallbackServerContext& caller, absl::string_view method,
                            absl::string_view owner);
  // The same for a call that did not arrive over gRPC (HTTP), whose
  // "authorization" value is `authorization` ("" for none).
  Call OpenPlain(absl::string_view authorization, absl::string_view method,
                 absl::string_view owner);
  // The status a relayed call ends with: the owner's when it answered,
  // else UNAVAILABLE "replica 'R' (address A) unreachable: …". Counts it.
  grpc::Status Finish(const Call& call, const grpc::Status& status, bool answered) const;

  // Peer channels kept open (at most kMaxChannels; least recently used
  // dropped).
  int open_channels();
  static constexpr int kMaxChannels = 64;

 private:
  explicit Peers(const Options& options) : options_(options) {}
  std::shared_ptr<grpc::GenericStub> StubFor(const std::string& owner, const std::string& address);

  const Options options_;
  absl::Mutex mu_;
  // Most recently used first.
  std::list<std::pair<std::string, std::shared_ptr<grpc::GenericStub>>> lru_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream::peers

#endif  // NPYSTREAM_SERVER_PEERS_PEERS_H_
