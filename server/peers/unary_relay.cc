#include "server/peers/unary_relay.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace npystream::peers {
namespace {

// Owns itself: deleted in OnDone.
class UnaryRelay : public grpc::ClientUnaryReactor {
 public:
  UnaryRelay(Peers* peers, Peers::Call call, google::protobuf::Message* response,
             std::function<void(grpc::Status)> done)
      : peers_(peers), call_(std::move(call)), response_(response), done_(std::move(done)) {}

  void Start(absl::string_view rpc, const google::protobuf::Message& request) {
    grpc::Slice bytes(request.SerializeAsString());
    request_ = grpc::ByteBuffer(&bytes, 1);
    call_.stub->PrepareUnaryCall(call_.context.get(), absl::StrCat("/npystream.v1.Tensors/", rpc),
                                 grpc::StubOptions(), &request_, &reply_, this);
    StartCall();
  }

  void OnReadInitialMetadataDone(bool ok) override {
    if (ok) answered_.store(true);
  }

  void OnDone(const grpc::Status& status) override {
    grpc::Status out = peers_->Finish(call_, status, answered_.load());
    grpc::Slice flat;
    if (out.ok() && (!reply_.DumpToSingleSlice(&flat).ok() ||
                     !response_->ParseFromArray(flat.begin(), static_cast<int>(flat.size())))) {
      out = grpc::Status(grpc::StatusCode::INTERNAL,
                         absl::StrCat("replica '", call_.owner, "' sent a malformed reply"));
    }
    done_(out);
    delete this;
  }

 private:
  Peers* const peers_;
  Peers::Call call_;
  google::protobuf::Message* const response_;
  const std::function<void(grpc::Status)> done_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
  std::atomic<bool> answered_{false};
};

}  // namespace

void RelayUnary(Peers* peers, Peers::Call call, absl::string_view rpc,
                const google::protobuf::Message& request, google::protobuf::Message* response,
                std::function<void(grpc::Status)> done) {
  (new UnaryRelay(peers, std::move(call), response, std::move(done)))->Start(rpc, request);
}

}  // namespace npystream::peers
