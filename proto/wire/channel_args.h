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

// Channel arguments for a client of npystreamd (and the bench's raw peer).
grpc::ChannelArguments StreamingChannelArguments();
// The same settings on a server.
void ApplyStreamingServerArguments(grpc::ServerBuilder* builder);

}  // namespace npystream::wire

#endif  // NPYSTREAM_PROTO_WIRE_CHANNEL_ARGS_H_
