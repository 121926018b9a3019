// The element loops of a host view: strided copies with numpy's casts, and
// the N x N mean pool. Each loop reads typed source elements and writes the
// destination's little-endian bytes. No LibTorch.
#ifndef NPYSTREAM_SERVER_VIEWS_VIEW_KERNELS_H_
#define NPYSTREAM_SERVER_VIEWS_VIEW_KERNELS_H_

#include <cstdint>

#include "server/npy/dtype.h"

namespace npystream::views {

// IEEE binary16 conversions as numpy does them: round to nearest even,
// overflow to infinity, NaN kept NaN with its top payload bits.
uint16_t FloatToHalf(float value);
uint16_t DoubleToHalf(double value);
float HalfToFloat(uint16_t bits);
// numpy's half -> double: exact, a NaN's payload bits kept (not quieted).
double HalfToDouble(uint16_t bits);

// Copies `count` elements, the i-th read at src + i * stride (stride in
// source elements, may be negative or 0), cast to the destination type,
// to consecutive destination elements at `dst`.
using CopyRun = void (*)(const char* src, int64_t stride, int64_t count, char* dst);
// The loop for `from` -> `to`; null when numpy refuses that cast under
// same_kind (see CanCastSameKind).
CopyRun CopyRunFor(npy::DType from, npy::DType to);

// Writes `count` pooled elements: the j-th is the mean of the n x n source
// block whose top-left element is at src + j * n * col_stride (rows
// row_stride apart, columns col_stride apart, in source elements), each
// element cast to the destination first, summed in double, rounded once.
using PoolRun = void (*)(const char* src, int64_t row_stride, int64_t col_stride, uint32_t n,
                         int64_t count, char* dst);
// The loop for `from` -> `to` (a float type); null when `to` is not a float
// or the cast is refused.
PoolRun PoolRunFor(npy::DType from, npy::DType to);

}  // namespace npystream::views

#endif  // NPYSTREAM_SERVER_VIEWS_VIEW_KERNELS_H_
