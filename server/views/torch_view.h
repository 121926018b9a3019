// TorchView: a view computed by LibTorch on the tensor's own device (index,
// then cast, then mean pool), for tensors whose memory the host cannot read.
#ifndef NPYSTREAM_SERVER_VIEWS_TORCH_VIEW_H_
#define NPYSTREAM_SERVER_VIEWS_TORCH_VIEW_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/store/tensor_store.h"
#include "server/views/view_spec.h"

namespace npystream::views {

// `plan` (resolved for `tensor`) computed on the tensor's device, inserted
// in `store` as an ephemeral tensor (counted in the budget while pinned,
// never under a handle). INTERNAL naming LibTorch's error; RESOURCE_EXHAUSTED
// from the budget. Thread-safe.
absl::StatusOr<std::shared_ptr<const StoredTensor>> ComputeTorchView(TensorStore* store,
                                                                     const StoredTensor& tensor,
                                                                     const ViewPlan& plan);

}  // namespace npystream::views

#endif  // NPYSTREAM_SERVER_VIEWS_TORCH_VIEW_H_
