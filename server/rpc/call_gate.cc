#include "server/rpc/call_gate.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/token.h"

namespace npystream::rpc {

CallTicket::CallTicket(CallGate* gate, grpc::CallbackServerContext* context,
                       absl::string_view method, bool idle_checked)
    : gate_(gate),
      context_(context),
      method_(method),
      idle_checked_(idle_checked),
      start_(absl::Now()),
      last_activity_ns_(absl::GetCurrentTimeNanos()) {}

CallTicket::~CallTicket() {
  if (!done_) Done(static_cast<int>(grpc::StatusCode::CANCELLED), "abandoned");
  gate_->Remove(this);
}

void CallTicket::Touch() { last_activity_ns_ = absl::GetCurrentTimeNanos(); }

void CallTicket::AddSent(uint64_t n) {
  bytes_ += n;
  Touch();
  if (gate_->metrics() != nullptr) gate_->metrics()->BytesSent(n);
}

void CallTicket::AddReceived(uint64_t n) {
  bytes_ += n;
  Touch();
  if (gate_->metrics() != nullptr) gate_->metrics()->BytesReceived(n);
}

void CallTicket::Done(int code, absl::string_view message) {
  if (done_) return;
  done_ = true;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  if (gate_->metrics() != nullptr) gate_->metrics()->CallDone(method_, code, seconds);
  const bool failed = code != 0 && code != static_cast<int>(grpc::StatusCode::CANCELLED);
  const std::string code_name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  std::vector<LogField> fields = {{"method", method_},
                                  {"code", code_name},
                                  {"handle", handle_.empty() ? "-" : handle_},
                                  {"bytes", bytes_},
                                  {"ms", seconds * 1e3}};
  if (!relayed_to_.empty()) fields.push_back({"relayed_to", relayed_to_});
  if (!message.empty()) fields.push_back({"error", message});
  Log(failed ? LogLevel::kWarning : (relayed_to_.empty() ? LogLevel::kDebug : LogLevel::kInfo),
      "rpc", fields);
}

absl::StatusOr<std::unique_ptr<CallTicket>> CallGate::Admit(grpc::CallbackServerContext* context,
                                                            absl::string_view method,
                                                            bool idle_checked) {
  std::optional<absl::string_view> authorization;
  const auto& md = context->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  return AdmitWith(authorization, context, method, idle_checked);
}

absl::StatusOr<std::unique_ptr<CallTicket>> CallGate::AdmitPlain(
    std::optional<absl::string_view> authorization, absl::string_view method) {
  return AdmitWith(authorization, nullptr, method, /*idle_checked=*/false);
}

absl::StatusOr<std::unique_ptr<CallTicket>> CallGate::AdmitWith(
    std::optional<absl::string_view> authorization, grpc::CallbackServerContext* context,
    absl::string_view method, bool idle_checked) {
  if (!options_.token.empty()) {
    if (!BearerTokenMatches(authorization.value_or(absl::string_view()), options_.token)) {
      const absl::Status s = absl::UnauthenticatedError(
          authorization ? "wrong bearer token" : "missing authorization: Bearer token");
      if (options_.metrics != nullptr) {
        options_.metrics->CallDone(method, static_cast<int>(s.code()), 0);
      }
      Log(LogLevel::kWarning, "rpc",
          {{"method", method},
           {"code", absl::StatusCodeToString(s.code())},
           {"error", s.message()}});
      return s;
    }
  }
  if (draining_) {
    if (options_.metrics != nullptr) {
      options_.metrics->CallDone(method, static_cast<int>(absl::StatusCode::kUnavailable), 0);
    }
    return absl::UnavailableError("npystreamd is draining for shutdown; retry elsewhere");
  }
  admitted_.fetch_add(1);
  std::unique_ptr<CallTicket> ticket(new CallTicket(this, context, method, idle_checked));
  absl::MutexLock lock(&mu_);
  live_.insert(ticket.get());
  return ticket;
}

CallGate::~CallGate() {
  // Taking the lock orders the last ticket's Remove (on a gRPC thread) before
  // the free, for ThreadSanitizer too, which cannot see gRPC's own ordering.
  absl::MutexLock lock(&mu_);
  if (!live_.empty()) {
    Log(LogLevel::kError, "call_gate_destroyed_with_calls",
        {{"calls", static_cast<int64_t>(live_.size())}});
  }
}

void CallGate::Remove(CallTicket* ticket) {
  absl::MutexLock lock(&mu_);
  live_.erase(ticket);
}

int64_t CallGate::in_flight() {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(live_.size());
}

bool CallGate::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](std::set<CallTicket*>* live) { return live->empty(); }, &live_),
      timeout);
}

int CallGate::CancelIdle() {
  if (options_.idle_timeout <= absl::ZeroDuration()) return 0;
  const int64_t cutoff =
      absl::GetCurrentTimeNanos() - absl::ToInt64Nanoseconds(options_.idle_timeout);
  int n = 0;
  absl::MutexLock lock(&mu_);
  for (CallTicket* t : live_) {
    if (t->idle_checked_ && t->context_ != nullptr && t->last_activity_ns_.load() < cutoff) {
      t->context_->TryCancel();
      t->last_activity_ns_ = absl::GetCurrentTimeNanos();  // once per period
      Log(LogLevel::kWarning, "rpc_idle_cancelled", {{"method", t->method_}});
      ++n;
    }
  }
  return n;
}

}  // namespace npystream::rpc
