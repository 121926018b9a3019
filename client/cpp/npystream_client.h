/// @file
/// npystream::Client: the C++ client of npystreamd.
#ifndef NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_
#define NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/process_tuning.h"  // TuneProcessForStreaming(): call it in main()
#include "grpcpp/grpcpp.h"
#include "npystream/v1/tensors.grpc.pb.h"

namespace npystream {

/// How Client::Connect reaches the daemon.
struct ClientOptions {
  std::string target = "127.0.0.1:50051";  ///< or "unix:///path/to.sock"
  std::string token;                       ///< sent as "authorization: Bearer <token>" when set
  std::string tls_root_pem;                ///< PEM roots: use TLS when set
  /// Use the daemon's --shm-dir files when this process sees them (checked
  /// once by the marker file's device and inode): FetchToBuffer reads the
  /// file instead of streaming.
  bool shm = true;
  /// On a unix:///P target, FetchInto and FetchToBuffer receive over the
  /// daemon's plain fetch socket P.fetch (no HTTP/2: ~2x the stream here)
  /// when it has one; otherwise, or when false, over gRPC.
  bool plain_fetch = true;
  /// When the daemon reports replicas (Topology: --peer-address), calls on
  /// another replica's handle ("...~R": the fetches, Map, Stat, Release) go
  /// straight to R (one connection per replica, at most 64 kept, least
  /// recently used dropped), back to this target when R is unreachable.
  bool route = true;
};

/// A tensor's .npy file in the daemon's --shm-dir, mapped into this process:
/// read-only for Client::Map, writable for Client::Allocate until Commit.
/// Unmapped when destroyed; a mapping stays valid after the tensor is released
/// (its memory returns when the last mapping ends). Not thread-safe.
class MappedTensor {
 public:
  ~MappedTensor();
  MappedTensor(const MappedTensor&) = delete;
  MappedTensor& operator=(const MappedTensor&) = delete;

  const npystream::v1::TensorInfo& info() const { return info_; }
  /// The whole .npy file, and its payload (C order, little-endian).
  const char* npy() const { return base_; }
  size_t npy_size() const { return size_; }
  const char* data() const { return base_ + data_offset_; }
  size_t size() const { return size_ - data_offset_; }
  /// The payload to fill before Commit; null for a Map (read-only).
  char* mutable_data() const { return writable_ ? base_ + data_offset_ : nullptr; }

 private:
  friend class Client;
  MappedTensor() = default;
  npystream::v1::TensorInfo info_;
  char* base_ = nullptr;
  size_t size_ = 0;
  size_t data_offset_ = 0;
  bool writable_ = false;
};

/// Part of a tensor, computed by the daemon where the tensor lives
/// (npystream.v1.TensorView): numpy basic indexing text, a descr to cast to
/// (same_kind), and an N x N mean pool of the last two axes. Empty: the whole
/// tensor. A view is fetched over gRPC (never the shm file or plain socket).
struct FetchView {
  std::string index;
  std::string dtype;
  uint32_t pool = 0;
  bool whole() const { return index.empty() && dtype.empty() && pool <= 1; }
};

/// What a Put asks for (npystream.v1.PutHeader).
struct PutOptions {
  std::string name;          ///< becomes the handle; a taken one is ALREADY_EXISTS
  std::string device;        ///< "" or "auto", "cpu", "cuda:N"
  uint32_t ttl_seconds = 0;  ///< 0: never expires
};

/// Thread-safe; one channel shared by all calls. Errors carry the server's
/// gRPC code and message as an absl::Status. Large transfers run 2-4x faster
/// in processes that called TuneProcessForStreaming() first.
class Client {
 public:
  /// A client for options.target; the channel connects on first use.
  /// INVALID_ARGUMENT when gRPC cannot make a channel to it.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();

  /// Streams the tensor's .npy bytes to `sink` in order, as they arrive
  /// (each piece is valid only during the call); `on_info` (may be empty) sees
  /// the TensorInfo before the first byte. Returns the TensorInfo. `stop`
  /// (may be null; any thread may set it) is read after each received
  /// message: once set, the call is cancelled on the daemon and CANCELLED
  /// returned.
  absl::StatusOr<npystream::v1::TensorInfo> Fetch(
      const std::string& handle,
      const std::function<void(const npystream::v1::TensorInfo&)>& on_info,
      const std::function<void(const char*, size_t)>& sink, uint32_t chunk_bytes = 0,
      const FetchView& view = {}, const std::atomic<bool>* stop = nullptr);
  /// Fetches the payload straight into the memory `place` returns for the
  /// tensor's TensorInfo and .npy header: exactly info.nbytes() writable bytes
  /// (an error status stops the fetch and is returned). Over the plain fetch
  /// socket (see ClientOptions) the bytes are received into that memory; over
  /// gRPC they are copied once from its slices. `progress` (may be empty) sees
  /// (.npy bytes done, npy_bytes) every 4 MiB and at the end. `stop` as for
  /// Fetch (over the plain socket: read every 4 MiB; the connection is closed).
  using PlaceFn = std::function<absl::StatusOr<char*>(const npystream::v1::TensorInfo&,
                                                      absl::string_view npy_header)>;
  absl::StatusOr<npystream::v1::TensorInfo> FetchInto(
      const std::string& handle, const PlaceFn& place,
      const std::function<void(uint64_t, uint64_t)>& progress = nullptr, uint32_t chunk_bytes = 0,
      const FetchView& view = {}, const std::atomic<bool>* stop = nullptr);
  /// Fetches into `buffer`, resized once to the .npy size: the shm file read,
  /// or FetchInto.
  absl::StatusOr<npystream::v1::TensorInfo> FetchToBuffer(const std::string& handle,
                                                          std::vector<char>* buffer,
                                                          const FetchView& view = {});
  /// Writes the .npy file at `path`.
  absl::StatusOr<npystream::v1::TensorInfo> FetchToFile(const std::string& handle,
                                                        const std::string& path);
  /// Streams the .npy file at `path` to the server.
  absl::StatusOr<npystream::v1::TensorInfo> PutFile(const std::string& path,
                                                    const PutOptions& options);
  /// Streams .npy bytes held in memory.
  absl::StatusOr<npystream::v1::TensorInfo> PutBytes(const std::string& npy,
                                                     const PutOptions& options);
  /// Streams a .npy file held in memory as two parts, its header and its
  /// payload (e.g. an array's own memory, not joined to the header first).
  /// `progress` (may be empty) is called with (bytes sent, total) after each
  /// request is written.
  absl::StatusOr<npystream::v1::TensorInfo> PutParts(
      absl::string_view npy_header, absl::string_view payload, const PutOptions& options,
      const std::function<void(uint64_t, uint64_t)>& progress = nullptr);
  /// Same host (the daemon runs with --shm-dir and this process sees it):
  /// the tensor's file mapped read-only, no copy. FAILED_PRECONDITION when the
  /// daemon has no --shm-dir or the folder is not visible here.
  absl::StatusOr<std::unique_ptr<MappedTensor>> Map(const std::string& handle);
  /// Same-host Put: a writable mapping of a new tensor's payload (descr like
  /// "<f4", C-order shape); fill mutable_data(), then Commit. Uncommitted, it
  /// is dropped after the daemon's --idle-timeout. Errors as Map, plus Put's.
  absl::StatusOr<std::unique_ptr<MappedTensor>> Allocate(const std::string& descr,
                                                         const std::vector<int64_t>& shape,
                                                         const PutOptions& options);
  /// Publishes an Allocate'd tensor (and unmaps it). NOT_FOUND when expired.
  absl::StatusOr<npystream::v1::TensorInfo> Commit(std::unique_ptr<MappedTensor> tensor);
  /// The TensorInfo of `handle`; NOT_FOUND when unknown.
  absl::StatusOr<npystream::v1::TensorInfo> Stat(const std::string& handle);
  /// Every stored tensor, oldest first.
  absl::StatusOr<std::vector<npystream::v1::TensorInfo>> List();
  /// Drops `handle`; NOT_FOUND when unknown.
  absl::Status Release(const std::string& handle);

 private:
  explicit Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);
  /// "Bearer <token>", or empty without a token.
  std::string Authorization() const;
  void Prepare(grpc::ClientContext* context) const;
  absl::StatusOr<npystream::v1::TensorInfo> Put(
      const PutOptions& options, const std::function<bool(std::string* chunk)>& next_chunk);

  // The client of the replica owning `handle` when routing sends the call
  // there, else null (this target serves it). Asks Topology once.
  std::shared_ptr<Client> Owner(const std::string& handle);
  // Drops the owner's client after UNAVAILABLE: this target serves the call.
  void Unreachable(const std::string& handle);
  absl::StatusOr<npystream::v1::TensorInfo> FetchHere(
      const std::string& handle,
      const std::function<void(const npystream::v1::TensorInfo&)>& on_info,
      const std::function<void(const char*, size_t)>& sink, uint32_t chunk_bytes,
      const FetchView& view, const std::atomic<bool>* stop);
  absl::StatusOr<npystream::v1::TensorInfo> FetchIntoHere(
      const std::string& handle, const PlaceFn& place,
      const std::function<void(uint64_t, uint64_t)>& progress, uint32_t chunk_bytes,
      const FetchView& view, const std::atomic<bool>* stop);

  /// OK when this process sees the daemon's shm folder (asked once).
  absl::Status SharedFolder();
  absl::StatusOr<std::unique_ptr<MappedTensor>> MapFile(const npystream::v1::MapResponse& response,
                                                        bool writable);
  /// The Map RPC: where the tensor's file is.
  absl::StatusOr<npystream::v1::MapResponse> MapRequest(const std::string& handle);

  /// FetchInto over the plain fetch socket; nullopt when there is none here
  /// (remembered), so the caller streams over gRPC.
  std::optional<absl::StatusOr<npystream::v1::TensorInfo>> PlainFetch(
      const std::string& handle, const PlaceFn& place,
      const std::function<void(uint64_t, uint64_t)>& progress, const std::atomic<bool>* stop);
  /// A connected plain fetch socket (an idle one when there is one; `fresh`
  /// never reuses), or -1 when there is no plain fetch socket here.
  int PlainConnection(bool fresh);

  const ClientOptions options_;
  const std::string plain_path_;  ///< empty: no plain fetch for this target
  absl::Mutex plain_mu_;
  std::vector<int> plain_idle_ ABSL_GUARDED_BY(plain_mu_);
  bool plain_absent_ ABSL_GUARDED_BY(plain_mu_) = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<npystream::v1::Tensors::Stub> stub_;
  absl::Mutex shm_mu_;
  bool shm_checked_ ABSL_GUARDED_BY(shm_mu_) = false;
  absl::Status shm_status_ ABSL_GUARDED_BY(shm_mu_);
  absl::Mutex route_mu_;
  bool topology_known_ ABSL_GUARDED_BY(route_mu_) = false;
  std::string replica_ ABSL_GUARDED_BY(route_mu_);
  std::string peer_template_ ABSL_GUARDED_BY(route_mu_);
  // Replica id -> its client, least recently used first.
  std::vector<std::pair<std::string, std::shared_ptr<Client>>> peers_ ABSL_GUARDED_BY(route_mu_);
};

}  // namespace npystream

#endif  // NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_
