#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {

void ToProto(const TensorInfo& info, npystream::v1::TensorInfo* out) {
  out->set_handle(info.handle);
  out->set_name(info.name);
  out->set_dtype(npy::Descr(info.meta.dtype));
  for (int64_t d : info.meta.shape) out->add_shape(d);
  out->set_nbytes(info.nbytes);
  out->set_npy_bytes(info.npy_bytes);
  out->set_device(info.device);
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_expires_unix_ms(info.expires_unix_ms);
}

TensorStore::PutSpec FromProto(const npystream::v1::PutHeader& header) {
  TensorStore::PutSpec spec;
  spec.name = header.name();
  spec.device = header.device();
  spec.ttl_seconds = header.ttl_seconds();
  return spec;
}

views::ViewRequest FromProto(const npystream::v1::TensorView& view) {
  return views::ViewRequest{view.index(), view.dtype(), view.pool()};
}

}  // namespace npystream::rpc
