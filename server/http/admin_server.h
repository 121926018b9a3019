// AdminServer: the admin HTTP port (Boost.Beast on Boost.Asio):
//   GET /metrics                       Prometheus text (no auth)
//   GET /healthz, /readyz              liveness, readiness (no auth)
//   GET /                              the dashboard page (token); its code under /static/
//   GET /v1/tensors                    JSON list (token when configured)
//   GET /v1/tensors/{h}.npy            the .npy, with Range support (token)
//   GET /v1/models                     models, inputs, outputs, layers (token)
//   POST /v1/models/{m}/infer          body .npy -> JSON output handles (token)
//   GET /v1/models/{m}/subscribe       WebSocket: JSON text + .npy binary per value (token)
// The token is a bearer header or a `token` query parameter (browsers cannot
// set headers on a WebSocket or a module script).
#ifndef NPYSTREAM_SERVER_HTTP_ADMIN_SERVER_H_
#define NPYSTREAM_SERVER_HTTP_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/inference_engine.h"
#include "server/peers/peers.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"
#include "server/views/views.h"

namespace npystream {

class AdminServer {
 public:
  struct Options {
    std::string listen = "127.0.0.1:8080";  // port 0 picks one
    // The Prometheus text for GET /metrics; called on an I/O thread.
    std::function<std::string()> scrape;
    TensorStore* store = nullptr;         // not owned
    Transfer* transfer = nullptr;         // not owned
    const views::Views* views = nullptr;  // not owned; /v1/tensors/{h}.npy?index=&dtype=&pool=
    InferenceEngine* engine = nullptr;    // not owned; null: no models
    // Relays /v1/tensors/{h}[.npy] of other replicas' handles to their
    // owners; not owned; null: none are.
    peers::Peers* peers = nullptr;
    PutLimits put_limits;   // for infer bodies
    int infer_threads = 4;  // run HTTP infer calls off the I/O threads
    // Why the daemon is not ready ("" when ready), asked on each /readyz.
    std::function<std::string()> not_ready_reason;
    std::string token;  // bearer token for /v1/tensors*, when set
    // Origins (exactly "scheme://host[:port]") whose pages may open the live
    // WebSocket besides the daemon's own; the token is still required.
    std::vector<std::string> allowed_origins;
    std::string tls_cert_pem;  // PEM bytes; TLS when set
    std::string tls_key_pem;
    std::string tls_client_ca_pem;  // PEM bytes; clients must present a cert it signed
    int threads = 2;
  };

  // UNAVAILABLE naming the address when it cannot bind; INVALID_ARGUMENT for
  // a malformed address or unusable TLS PEM.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const Options& options);
  ~AdminServer();

  int port() const;
  // Stops accepting, closes connections and joins the threads; HTTP infer
  // calls already running finish first. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_ADMIN_SERVER_H_
