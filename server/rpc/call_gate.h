// CallGate: admission for every npystream call (bearer token, drain), the
// count of calls in flight, idle-stream cancellation, and one log line and
// one metrics sample per finished call.
#ifndef NPYSTREAM_SERVER_RPC_CALL_GATE_H_
#define NPYSTREAM_SERVER_RPC_CALL_GATE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/rpc/rpc_metrics.h"

namespace npystream::rpc {

class CallGate;

// One admitted call. Not thread-safe except Touch, which reactors call from
// gRPC's threads while the gate's watchdog reads it.
class CallTicket {
 public:
  ~CallTicket();
  void set_handle(std::string handle) { handle_ = std::move(handle); }
  // The call was relayed to replica `owner` (logged at info, with it).
  void set_relayed_to(std::string owner) { relayed_to_ = std::move(owner); }
  // Records progress (resets the idle clock).
  void Touch();
  // Payload bytes moved by this call; also reported to the metrics.
  void AddSent(uint64_t n);
  void AddReceived(uint64_t n);
  // Records the outcome: metrics, plus a log line (debug; warning on error).
  // Only the first call counts.
  void Done(int code, absl::string_view message = "");

 private:
  friend class CallGate;
  CallTicket(CallGate* gate, grpc::CallbackServerContext* context, absl::string_view method,
             bool idle_checked);

  CallGate* const gate_;
  grpc::CallbackServerContext* const context_;
  const std::string method_;
  const bool idle_checked_;
  const absl::Time start_;
  std::atomic<int64_t> last_activity_ns_;
  std::string handle_;
  std::string relayed_to_;
  uint64_t bytes_ = 0;
  bool done_ = false;
};

// Thread-safe; outlives every ticket.
class CallGate {
 public:
  struct Options {
    std::string token;                                   // empty: no auth
    absl::Duration idle_timeout = absl::ZeroDuration();  // zero: never
    RpcMetrics* metrics = nullptr;                       // may be null
  };
  explicit CallGate(const Options& options) : options_(options) {}
  // Every ticket must be gone (the server waits for its calls first).
  ~CallGate();

  // UNAUTHENTICATED when a token is configured and the call's
  // "authorization: Bearer <token>" is missing or wrong (compared in constant
  // time); UNAVAILABLE while draining. `idle_checked` calls are cancelled
  // after idle_timeout without progress (streams that move bytes).
  absl::StatusOr<std::unique_ptr<CallTicket>> Admit(grpc::CallbackServerContext* context,
                                                    absl::string_view method,
                                                    bool idle_checked = false);
  // The same checks for a call that did not come through gRPC (the plain
  // fetch socket): `authorization` is its "authorization" value, nullopt when
  // none was sent. Its ticket is never idle-cancelled here (its owner bounds
  // its own waits).
  absl::StatusOr<std::unique_ptr<CallTicket>> AdmitPlain(
      std::optional<absl::string_view> authorization, absl::string_view method);

  // Readiness goes false and new calls are refused; calls in flight go on.
  void StartDrain() { draining_ = true; }
  bool draining() const { return draining_.load(); }
  int64_t in_flight();
  // Calls admitted since start (a cheap activity clock).
  int64_t admitted() const { return admitted_.load(); }
  // Waits until no call is in flight or `timeout` passes; true when idle.
  bool WaitIdle(absl::Duration timeout);
  // Cancels idle-checked calls without progress for idle_timeout; returns
  // how many. Called periodically by the server.
  int CancelIdle();
  RpcMetrics* metrics() const { return options_.metrics; }

 private:
  friend class CallTicket;
  absl::StatusOr<std::unique_ptr<CallTicket>> AdmitWith(
      std::optional<absl::string_view> authorization, grpc::CallbackServerContext* context,
      absl::string_view method, bool idle_checked);
  void Remove(CallTicket* ticket);

  const Options options_;
  std::atomic<int64_t> admitted_{0};
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  std::set<CallTicket*> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_CALL_GATE_H_
