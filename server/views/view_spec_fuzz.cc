// libFuzzer target: the view parser and resolver never crash or overflow,
// and every view they accept reads only elements inside the tensor.
// Input: 1 byte ndim (mod 5), ndim bytes of axis sizes, 1 byte dtype, 1 byte
// pool, 1 byte cast dtype (255: none), then the index text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/views/view_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using npystream::npy::DType;
  if (size < 4) return 0;
  const size_t ndim = data[0] % 5;
  if (size < 4 + ndim) return 0;
  npystream::npy::ArrayMeta meta;
  for (size_t d = 0; d < ndim; ++d) meta.shape.push_back(data[1 + d] % 17);
  meta.dtype = static_cast<DType>(data[1 + ndim] % npystream::npy::kNumDTypes);
  npystream::views::ViewRequest request;
  request.pool = data[2 + ndim] % 6;
  if (data[3 + ndim] != 255) {
    request.dtype =
        npystream::npy::Descr(static_cast<DType>(data[3 + ndim] % npystream::npy::kNumDTypes));
  }
  request.index.assign(reinterpret_cast<const char*>(data) + 4 + ndim, size - 4 - ndim);
  auto plan = npystream::views::ResolveView(meta, request);
  if (!plan.ok()) {
    if (plan.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  // The lowest and highest source element the view reads.
  int64_t low = plan->offset, high = plan->offset;
  for (size_t d = 0; d < plan->indexed_shape.size(); ++d) {
    const int64_t n = plan->indexed_shape[d];
    if (n == 0) return 0;  // reads nothing
    const int64_t reach = (n - 1) * plan->strides[d];
    (reach < 0 ? low : high) += reach;
  }
  if (low < 0 || high >= static_cast<int64_t>(meta.NumElements())) std::abort();
  if (plan->out.shape.size() != plan->indexed_shape.size()) std::abort();
  return 0;
}
