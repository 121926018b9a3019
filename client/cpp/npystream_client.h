// npystream::Client: the C++ client of npystreamd.
#ifndef NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_
#define NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/process_tuning.h"  // TuneProcessForStreaming(): call it in main()
#include "grpcpp/grpcpp.h"
#include "npystream/v1/tensors.grpc.pb.h"

namespace npystream {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  std::string token;         // sent as "authorization: Bearer <token>" when set
  std::string tls_root_pem;  // PEM roots: use TLS when set
};

struct PutOptions {
  std::string name;
  std::string device;
  uint32_t ttl_seconds = 0;
};

// Thread-safe; one channel shared by all calls. Errors carry the server's
// gRPC code and message as an absl::Status. Large transfers run 2-4x faster
// in processes that called TuneProcessForStreaming() first.
class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  // Streams the tensor's .npy bytes to `sink` in order, as they arrive
  // (each piece is valid only during the call); `on_info` (may be empty) sees
  // the TensorInfo before the first byte. Returns the TensorInfo.
  absl::StatusOr<npystream::v1::TensorInfo> Fetch(
      const std::string& handle,
      const std::function<void(const npystream::v1::TensorInfo&)>& on_info,
      const std::function<void(const char*, size_t)>& sink, uint32_t chunk_bytes = 0);
  // Fetches into `buffer`, resized once to the .npy size: the payload is
  // copied once, from gRPC's slices into place.
  absl::StatusOr<npystream::v1::TensorInfo> FetchToBuffer(const std::string& handle,
                                                          std::vector<char>* buffer);
  // Writes the .npy file at `path`.
  absl::StatusOr<npystream::v1::TensorInfo> FetchToFile(const std::string& handle,
                                                        const std::string& path);
  // Streams the .npy file at `path` to the server.
  absl::StatusOr<npystream::v1::TensorInfo> PutFile(const std::string& path,
                                                    const PutOptions& options);
  // Streams .npy bytes held in memory.
  absl::StatusOr<npystream::v1::TensorInfo> PutBytes(const std::string& npy,
                                                     const PutOptions& options);
  absl::StatusOr<npystream::v1::TensorInfo> Stat(const std::string& handle);
  absl::StatusOr<std::vector<npystream::v1::TensorInfo>> List();
  absl::Status Release(const std::string& handle);

 private:
  explicit Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext* context) const;
  absl::StatusOr<npystream::v1::TensorInfo> Put(
      const PutOptions& options, const std::function<bool(std::string* chunk)>& next_chunk);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<npystream::v1::Tensors::Stub> stub_;
};

}  // namespace npystream

#endif  // NPYSTREAM_CLIENT_CPP_NPYSTREAM_CLIENT_H_
