// DaemonConfig: npystreamd's settings from flags, NPYSTREAM_* environment
// variables and defaults, in that order of precedence.
#ifndef NPYSTREAM_SERVER_DAEMON_CONFIG_H_
#define NPYSTREAM_SERVER_DAEMON_CONFIG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream {

struct DaemonConfig {
  // gRPC listeners: host:port or unix:///path (--listen may repeat).
  std::vector<std::string> listen = {"127.0.0.1:50051"};
  uint64_t store_budget = uint64_t{8} << 30;
  std::string device = "auto";
  std::string model_repository;
  std::string http_listen = "127.0.0.1:8080";
  std::vector<std::string> http_allow_origins;  // other pages that may open the WebSocket
  uint64_t max_put_bytes = 0;                   // 0: only the store budget limits a Put
  uint64_t max_header_bytes = 64 * 1024;
  int max_ndim = 32;
  int max_concurrent_streams = 0;
  bool grpc_gzip_replies = false;  // --grpc-compression=gzip (gzip requests are always read)
  int drain_timeout_seconds = 30;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string tls_cert;  // PEM files: TLS on the gRPC and admin ports
  std::string tls_key;
  std::string tls_client_ca;       // PEM: require client certificates it signed
  std::string auth_token_file;     // first line is the bearer token
  int idle_timeout_seconds = 300;  // Put/Fetch streams without progress
  std::string config_file;
  uint64_t staging_bytes = uint64_t{256} << 20;  // pinned ring per GPU
  uint64_t staging_chunk = uint64_t{4} << 20;    // ring slot size
  int copy_streams = 4;
  int torch_threads = 0;          // LibTorch intra-op threads (0: half the cores, at least 1)
  int torch_interop_threads = 0;  // LibTorch inter-op threads (0: its default)
  std::string shm_dir;            // same-host tensor files (tmpfs); empty: off
  std::string shm_group;          // group of those files; empty: the daemon's
  std::string replica_id;         // in server-chosen handles; empty: the host name
  // How replicas reach each other: "{replica}" is replaced by an id
  // (Topology tells clients); empty: this daemon knows no peers.
  std::string peer_address;
  // How long a relayed call may wait to connect to the owner.
  double peer_connect_timeout_seconds = 2;
};

// Parses `args` (argv without the program name): --name=value or --name value.
// `getenv` looks up NPYSTREAM_<NAME> (dashes become underscores). A JSON
// file named by --config (or NPYSTREAM_CONFIG) holds {"flag-name": value};
// precedence: flags, then environment, then the file, then defaults.
// INVALID_ARGUMENT naming the flag (or file key) for unknown names and bad values.
absl::StatusOr<DaemonConfig> ParseDaemonConfig(
    const std::vector<std::string>& args, const std::function<const char*(const char*)>& getenv);

// Applies a --config file's text ({"flag-name": value, ...}) over `config`.
// INVALID_ARGUMENT naming the key or value; `config` may be partly updated.
absl::Status ApplyConfigJson(absl::string_view json_text, DaemonConfig* config);

// The --help text.
std::string DaemonUsage();

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_DAEMON_CONFIG_H_
