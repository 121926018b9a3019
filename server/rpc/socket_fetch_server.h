// SocketFetchServer: the plain fetch (proto/wire/socket_fetch.h) on a Unix
// socket beside gRPC's, for same-host clients: the .npy bytes are sent with
// send() straight from the tensor's host memory (a GPU tensor's through the
// staging ring), no HTTP/2 framing. Admission (token, drain), metrics and the
// per-call log line are the gRPC calls' (CallGate, method "PlainFetch").
#ifndef NPYSTREAM_SERVER_RPC_SOCKET_FETCH_SERVER_H_
#define NPYSTREAM_SERVER_RPC_SOCKET_FETCH_SERVER_H_

#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/peers/peers.h"
#include "server/rpc/call_gate.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace npystream::rpc {

class SocketFetchServer {
 public:
  struct Options {
    std::string path;              // the socket file; a socket already there is replaced
    TensorStore* store = nullptr;  // not owned; these three outlive the server
    Transfer* transfer = nullptr;
    CallGate* gate = nullptr;
    // A client that takes nothing for this long mid-fetch is cut off; zero:
    // never. A connection waiting between requests is never timed out.
    absl::Duration send_timeout = absl::ZeroDuration();
    int max_connections = 64;  // more are answered UNAVAILABLE and closed
    // Another replica's handle is answered UNAVAILABLE, so that the client
    // asks gRPC, which relays it. Not owned; may be null.
    const peers::Peers* peers = nullptr;
  };

  // Binds and starts accepting. UNAVAILABLE naming the path when it cannot
  // bind; INVALID_ARGUMENT for a missing store, transfer or gate.
  static absl::StatusOr<std::unique_ptr<SocketFetchServer>> Start(const Options& options);
  // Stop().
  ~SocketFetchServer();

  // Stops accepting, cuts every connection (a fetch in progress ends short)
  // and joins their threads; removes the socket file. Idempotent; not
  // thread-safe against itself.
  void Stop();

 private:
  struct Connection {
    int fd = -1;  // -1 once its thread closed it
    bool done = false;
    std::thread thread;
  };
  explicit SocketFetchServer(const Options& options) : options_(options) {}
  void AcceptLoop();
  void Serve(Connection* connection);
  // Reaps finished connections; returns how many are live. Needs mu_.
  int ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop wakes the accept loop
  std::thread acceptor_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
  bool stopped_ = false;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_SOCKET_FETCH_SERVER_H_
