#include "server/peers/peers.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "proto/wire/channel_args.h"

namespace npystream::peers {
namespace {

constexpr char kPlaceholder[] = "{replica}";
constexpr absl::string_view kReplicaChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
// The relaying replica holds at most this much of a relayed stream in gRPC's
// buffers (plus the message being written out): the client's pace reaches
// the owner through HTTP/2 flow control.
constexpr int kPeerWindowBytes = 2 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<Peers>> Peers::Create(const Options& options) {
  if (options.address_template.find(kPlaceholder) == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer address template '", options.address_template, "' needs {replica}"));
  }
  if (options.replica.empty()) {
    return absl::InvalidArgumentError("relaying to peers needs this replica's id");
  }
  return std::unique_ptr<Peers>(new Peers(options));
}

std::string Peers::OwnerElsewhere(absl::string_view handle) const {
  const size_t tilde = handle.rfind('~');
  if (tilde == absl::string_view::npos) return "";
  const absl::string_view owner = handle.substr(tilde + 1);
  if (owner.empty() || owner.size() > 63 || owner == options_.replica ||
      owner.find_first_not_of(kReplicaChars) != absl::string_view::npos) {
    return "";
  }
  return std::string(owner);
}

std::string Peers::AddressOf(absl::string_view replica) const {
  return absl::StrReplaceAll(options_.address_template, {{kPlaceholder, replica}});
}

absl::StatusOr<Peers::Call> Peers::Open(const grpc::CallbackServerContext& caller,
                                        absl::string_view method, absl::string_view owner) {
  const auto& md = caller.client_metadata();
  if (auto it = md.find(kForwardedByKey); it != md.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "handle of replica '", owner, "' reached replica '", options_.replica,
        "' already relayed by replica '", absl::string_view(it->second.data(), it->second.size()),
        "': a relayed call is not relayed again (do the replicas share one --peer-address?)"));
  }
  absl::string_view authorization;
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  return OpenPlain(authorization, method, owner);
}

Peers::Call Peers::OpenPlain(absl::string_view authorization, absl::string_view method,
                             absl::string_view owner) {
  Call call;
  call.method = std::string(method);
  call.owner = std::string(owner);
  call.address = AddressOf(owner);
  call.stub = StubFor(call.owner, call.address);
  call.context = std::make_unique<grpc::ClientContext>();
  if (!authorization.empty()) {
    call.context->AddMetadata("authorization", std::string(authorization));
  }
  call.context->AddMetadata(kForwardedByKey, options_.replica);
  return call;
}

grpc::Status Peers::Finish(const Call& call, const grpc::Status& status, bool answered) const {
  grpc::Status out = status;
  if (!answered && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    out = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("replica '", call.owner, "' (address ", call.address,
                                    ") unreachable: ", status.error_message()));
  }
  if (options_.metrics != nullptr) options_.metrics->Forwarded(call.method, out.error_code());
  return out;
}

std::shared_ptr<grpc::GenericStub> Peers::StubFor(const std::string& owner,
                                                  const std::string& address) {
  std::vector<std::shared_ptr<grpc::GenericStub>> dropped;  // closed outside the lock
  std::shared_ptr<grpc::GenericStub> stub;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->first == owner) {
        lru_.splice(lru_.begin(), lru_, it);
        return lru_.front().second;
      }
    }
    grpc::ChannelArguments args = wire::StreamingChannelArguments();
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kPeerWindowBytes);
    // Each connection attempt gives up after the connect timeout (gRPC's
    // default is 20 s); calls then fail UNAVAILABLE instead of waiting.
    const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.connect_timeout));
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, timeout_ms);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(timeout_ms, 1000));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(timeout_ms, 1000));
    // One channel per owner, not shared with other channels' subchannels.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto credentials =
        options_.credentials != nullptr ? options_.credentials : grpc::InsecureChannelCredentials();
    stub =
        std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(address, credentials, args));
    lru_.emplace_front(owner, stub);
    while (lru_.size() > static_cast<size_t>(kMaxChannels)) {
      dropped.push_back(std::move(lru_.back().second));
      lru_.pop_back();
    }
  }
  return stub;
}

int Peers::open_channels() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(lru_.size());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return status.ok() ? absl::OkStatus()
                     : absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                    status.error_message());
}

}  // namespace npystream::peers
