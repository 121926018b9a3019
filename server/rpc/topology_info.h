// TopologyInfo: what npystream.v1.Tensors.Topology answers.
#ifndef NPYSTREAM_SERVER_RPC_TOPOLOGY_INFO_H_
#define NPYSTREAM_SERVER_RPC_TOPOLOGY_INFO_H_

#include <string>

namespace npystream::rpc {

// This daemon's replica id and how replicas reach each other
// (--peer-address, "{replica}" standing for an id; empty: unset).
struct TopologyInfo {
  std::string replica;
  std::string peer_address;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_TOPOLOGY_INFO_H_
