// RelayUnary: a unary call for another replica's handle (Stat, Release),
// relayed to its owner and its answer passed back.
#ifndef NPYSTREAM_SERVER_PEERS_UNARY_RELAY_H_
#define NPYSTREAM_SERVER_PEERS_UNARY_RELAY_H_

#include <functional>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "server/peers/peers.h"

namespace npystream::peers {

// Sends `request` to `call.owner`'s npystream.v1.Tensors/<rpc> ("Stat";
// call.method names it in the metric) and calls `done` once, on a gRPC
// thread, with the status to answer (see Peers::Finish); on OK the owner's
// reply is parsed into `*response`, which must stay valid until then.
void RelayUnary(Peers* peers, Peers::Call call, absl::string_view rpc,
                const google::protobuf::Message& request, google::protobuf::Message* response,
                std::function<void(grpc::Status)> done);

}  // namespace npystream::peers

#endif  // NPYSTREAM_SERVER_PEERS_UNARY_RELAY_H_
