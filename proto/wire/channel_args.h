// The gRPC channel settings both ends of a bulk stream agree on: the one
// place they are written for C++ (the Python client mirrors them in _wire.py).
#ifndef NPYSTREAM_PROTO_WIRE_CHANNEL_ARGS_H_
#define NPYSTREAM_PROTO_WIRE_CHANNEL_ARGS_H_

#include "grpcpp/grpcpp.h"

namespace npystream::wire {

// Largest message either side accepts: Put chunks of 4 MiB plus framing,
// inline Infer inputs and results.
inline constexpr int kMaxMessageBytes = 64 << 20;
// A fixed HTTP/2 stream window from the first byte: with gRPC's default BDP
// probing a fresh channel starts at 64 KiB and needs hundreds of MiB to reach
// full speed on loopback (measured: 64 MiB in 85 ms vs 28 ms).
inline constexpr int kStreamWindowBytes = 16 << 20;

// A client's retry policy (gRPC service config): a call that fails with
// UNAVAILABLE before the daemon answered (the connection a restarted daemon
// broke, a draining daemon) is tried up to twice more, 50-500 ms apart.
// Release, Allocate, Commit, Reload and Infer (each stores or drops state)
// are not retried, nor Put: gRPC 1.51 replays its hand-framed messages empty
// (the daemon answers INVALID_ARGUMENT "truncated"). A retry happens only
// before any reply arrived, so a stream is never replayed half-received.
// Mirrored in client/python/npystream/_wire.py (tests compare the two).
inline constexpr char kClientServiceConfigJson[] = R"json({
  "methodConfig": [{
    "name": [
      {"service": "npystream.v1.Tensors", "method": "Fetch"},
      {"service": "npystream.v1.Tensors", "method": "Stat"},
      {"service": "npystream.v1.Tensors", "method": "List"},
      {"service": "npystream.v1.Tensors", "method": "Map"},
      {"service": "npystream.v1.Tensors", "method": "Shm"},
      {"service": "npystream.v1.Tensors", "method": "Topology"},
      {"service": "npystream.v1.Inference", "method": "ListModels"},
      {"service": "npystream.v1.Inference", "method": "Subscribe"}
    ],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.05s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";

// Channel arguments for a client of npystreamd (and the bench's raw peer).
grpc::ChannelArguments StreamingChannelArguments();
// The same settings on a server.
void ApplyStreamingServerArguments(grpc::ServerBuilder* builder);

}  // namespace npystream::wire

#endif  // NPYSTREAM_PROTO_WIRE_CHANNEL_ARGS_H_
