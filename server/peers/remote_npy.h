// RemoteNpy: the .npy file of another replica's tensor (or a view of it),
// read from its owner through a relayed Fetch, for the HTTP download.
#ifndef NPYSTREAM_SERVER_PEERS_REMOTE_NPY_H_
#define NPYSTREAM_SERVER_PEERS_REMOTE_NPY_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "npystream/v1/tensors.pb.h"
#include "server/peers/peers.h"

namespace npystream::peers {

// Thread-compatible: one Next outstanding at a time. Destroying it cancels
// the owner's stream. Bytes are read from the owner only as Next asks for
// them (one message at a time), so a slow reader slows the owner.
class RemoteNpy {
 public:
  using Ready = std::function<void(absl::StatusOr<std::unique_ptr<RemoteNpy>>)>;
  // Starts `request` on `call.owner`; calls `ready` once, on a gRPC thread,
  // when the owner's first message arrived, or with the status the relayed
  // call ended with (see Peers::Finish).
  static void Open(Peers* peers, Peers::Call call, const npystream::v1::FetchRequest& request,
                   Ready ready);
  ~RemoteNpy();

  // What the owner says the file is (npy_bytes: its whole length).
  const npystream::v1::TensorInfo& info() const;
  // Calls `done` once, possibly on another thread, with the next bytes of
  // the file (the header first), "" after the last, or the error.
  void Next(std::function<void(absl::StatusOr<std::string>)> done);

  struct State;  // shared with the owner's call, which may outlive this
  explicit RemoteNpy(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

}  // namespace npystream::peers

#endif  // NPYSTREAM_SERVER_PEERS_REMOTE_NPY_H_
