// A view of a resident tensor (npystream.v1.TensorView): numpy basic
// indexing, a same_kind cast and an N x N mean pool, parsed and resolved
// against one tensor's dtype and shape. No LibTorch, no gRPC.
#ifndef NPYSTREAM_SERVER_VIEWS_VIEW_SPEC_H_
#define NPYSTREAM_SERVER_VIEWS_VIEW_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/npy/dtype.h"

namespace npystream::views {

// What a client asks for (mirrors npystream.v1.TensorView).
struct ViewRequest {
  std::string index;  // numpy basic indexing as inside a[...]; "" = all
  std::string dtype;  // numpy descr to cast to; "" keeps the dtype
  uint32_t pool = 0;  // 0 or 1: none; N: mean over N x N blocks of the last two axes
  // True when nothing is asked: the whole tensor, as a plain fetch.
  bool whole() const { return index.empty() && dtype.empty() && pool <= 1; }
};

// One item of an index expression.
struct IndexItem {
  enum class Kind { kInteger, kSlice, kEllipsis };
  Kind kind = Kind::kSlice;
  int64_t integer = 0;                       // kInteger
  std::optional<int64_t> start, stop, step;  // kSlice; unset parts take numpy's defaults
};

// Parses `text` (the grammar inside a[...]: comma-separated integers, slices
// start:stop:step and at most one "...", whitespace ignored, an optional
// trailing comma). INVALID_ARGUMENT "view index: ..." naming the defect.
absl::StatusOr<std::vector<IndexItem>> ParseIndex(absl::string_view text);

// The checks that need no tensor: the index parses, the dtype is one
// npystream serves, a pool is not asked of a non-float dtype.
// INVALID_ARGUMENT as ResolveView.
absl::Status CheckViewRequest(const ViewRequest& request);

// numpy.can_cast(from, to, casting="same_kind").
bool CanCastSameKind(npy::DType from, npy::DType to);

// A view resolved against one tensor. The view's elements, in C order, are
// source elements offset + sum(i_d * strides[d]) over the indexed shape,
// cast to `dtype`, then (pool > 1) averaged over pool x pool blocks.
struct ViewPlan {
  npy::DType source_dtype = npy::DType::kFloat32;
  std::vector<int64_t> indexed_shape;  // after the index, before pooling
  std::vector<int64_t> strides;        // in source elements, may be negative or 0-sized
  int64_t offset = 0;                  // source element of the view's first element
  uint32_t pool = 1;
  npy::ArrayMeta out;  // the view as sent: dtype, shape (C order)

  bool casts() const { return out.dtype != source_dtype; }
  // The view's bytes are one run of the source's: no cast, no pool, and its
  // elements are consecutive source elements from `offset` on.
  bool contiguous() const;
};

// Resolves `request` for a C-order tensor of `meta`. INVALID_ARGUMENT naming
// the defect: "view index: 12 is out of range for axis 1 of size 8", a zero
// step, too many indices, two "...", an unknown or refused dtype, a pool on a
// non-float view, on fewer than 2 axes or larger than an axis.
absl::StatusOr<ViewPlan> ResolveView(const npy::ArrayMeta& meta, const ViewRequest& request);

}  // namespace npystream::views

#endif  // NPYSTREAM_SERVER_VIEWS_VIEW_SPEC_H_
