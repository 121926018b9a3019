// HostViewReader: the payload of a view of a host tensor, gathered from the
// tensor's memory into each chunk as it is read (a strided copy of only the
// view's elements; no whole-tensor copy, no LibTorch).
#ifndef NPYSTREAM_SERVER_VIEWS_HOST_VIEW_READER_H_
#define NPYSTREAM_SERVER_VIEWS_HOST_VIEW_READER_H_

#include <memory>

#include "server/transfer/transfer.h"
#include "server/views/view_spec.h"

namespace npystream::views {

// The most bytes one gathered chunk holds.
inline constexpr size_t kMaxGatherBytes = 4 << 20;

// A reader of `plan` (resolved for `tensor`, whose host_data() must be set):
// a contiguous plan's chunks are views of the tensor's memory; others are
// new buffers of at most kMaxGatherBytes. Reads complete inside Read.
std::unique_ptr<PayloadReader> NewHostViewReader(std::shared_ptr<const StoredTensor> tensor,
                                                 ViewPlan plan);

}  // namespace npystream::views

#endif  // NPYSTREAM_SERVER_VIEWS_HOST_VIEW_READER_H_
