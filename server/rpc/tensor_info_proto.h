// TensorInfo (store) to npystream.v1.TensorInfo (wire).
#ifndef NPYSTREAM_SERVER_RPC_TENSOR_INFO_PROTO_H_
#define NPYSTREAM_SERVER_RPC_TENSOR_INFO_PROTO_H_

#include "npystream/v1/tensors.pb.h"
#include "server/store/tensor_store.h"
#include "server/views/view_spec.h"

namespace npystream::rpc {

void ToProto(const TensorInfo& info, npystream::v1::TensorInfo* out);
// The store's PutSpec for a PutHeader (name, device, TTL), shared by Put
// and Allocate.
TensorStore::PutSpec FromProto(const npystream::v1::PutHeader& header);
views::ViewRequest FromProto(const npystream::v1::TensorView& view);

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_TENSOR_INFO_PROTO_H_
