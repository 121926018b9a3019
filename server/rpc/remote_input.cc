#include "server/rpc/remote_input.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "npystream/v1/tensors.pb.h"
#include "server/common/status_macros.h"
#include "server/npy/npy_parser.h"
#include "server/peers/remote_npy.h"

namespace npystream::rpc {
namespace {

// The owner's stream, opened; blocks until its first message or its end.
absl::StatusOr<std::unique_ptr<peers::RemoteNpy>> OpenBlocking(peers::Peers* peers,
                                                               peers::Peers::Call call,
                                                               const std::string& handle) {
  npystream::v1::FetchRequest request;
  request.set_handle(handle);
  absl::Notification opened;
  std::optional<absl::StatusOr<std::unique_ptr<peers::RemoteNpy>>> result;
  peers::RemoteNpy::Open(peers, std::move(call), request,
                         [&](absl::StatusOr<std::unique_ptr<peers::RemoteNpy>> npy) {
                           result = std::move(npy);
                           opened.Notify();
                         });
  opened.WaitForNotification();
  return *std::move(result);
}

// The next bytes of the file; "" after the last.
absl::StatusOr<std::string> NextBlocking(peers::RemoteNpy* npy) {
  absl::Notification arrived;
  std::optional<absl::StatusOr<std::string>> result;
  npy->Next([&](absl::StatusOr<std::string> bytes) {
    result = std::move(bytes);
    arrived.Notify();
  });
  arrived.WaitForNotification();
  return *std::move(result);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const StoredTensor>> ReadRemoteInput(
    peers::Peers* peers, const grpc::CallbackServerContext& caller, const std::string& owner,
    const std::string& handle, TensorStore* store, const PutLimits& limits, uint64_t* received) {
  ASSIGN_OR_RETURN(peers::Peers::Call call, peers->Open(caller, "InferInput", owner));
  ASSIGN_OR_RETURN(std::unique_ptr<peers::RemoteNpy> npy,
                   OpenBlocking(peers, std::move(call), handle));
  const auto cut_short = [&] {
    return absl::DataLossError(
        absl::StrCat("replica '", owner, "' ended the fetch of '", handle, "' before its end"));
  };
  // The header may span messages; the payload after it streams into place.
  std::string head;
  size_t header_size = 0;
  while (header_size == 0 || head.size() < header_size) {
    ASSIGN_OR_RETURN(std::string bytes, NextBlocking(npy.get()));
    if (bytes.empty()) return cut_short();
    head.append(bytes);
    ASSIGN_OR_RETURN(header_size, npy::PeekHeaderSize(head, limits.parse));
  }
  TensorStore::PutSpec spec;
  spec.ephemeral = true;
  spec.device = "cpu";  // as an inline input; the model moves it
  ASSIGN_OR_RETURN(
      std::unique_ptr<TensorWriter> writer,
      BeginNpyPut(store, absl::string_view(head).substr(0, header_size), limits, &spec));
  std::string bytes = head.substr(header_size);
  head.clear();
  // Read to the stream's end, so the owner's call ends OK (not cancelled).
  do {
    RETURN_IF_ERROR(writer->Append(bytes.data(), bytes.size()));
    *received += bytes.size();
    if (caller.IsCancelled()) {
      return absl::CancelledError(
          absl::StrCat("the call ended while reading '", handle, "' from replica '", owner, "'"));
    }
    ASSIGN_OR_RETURN(bytes, NextBlocking(npy.get()));
  } while (!bytes.empty());
  if (writer->received() < writer->expected()) return cut_short();
  return writer->Commit();
}

}  // namespace npystream::rpc
