#include "server/views/torch_view.h"

#include <ATen/ATen.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/torch_dtype.h"

namespace npystream::views {
namespace {

bool IsFloatOrComplex(npy::DType t) {
  return t == npy::DType::kFloat16 || t == npy::DType::kFloat32 || t == npy::DType::kFloat64 ||
         t == npy::DType::kComplex64 || t == npy::DType::kComplex128;
}

// The indexed elements, contiguous on the tensor's device. LibTorch has no
// negative strides: such an axis is taken forwards, then flipped.
at::Tensor Indexed(const at::Tensor& t, const ViewPlan& plan) {
  std::vector<int64_t> sizes = plan.indexed_shape;
  std::vector<int64_t> strides = plan.strides;
  for (int64_t n : sizes) {
    if (n == 0) return at::empty(sizes, t.options());
  }
  int64_t offset = t.storage_offset() + plan.offset;
  std::vector<int64_t> flip;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (strides[d] < 0) {
      offset += (sizes[d] - 1) * strides[d];
      strides[d] = -strides[d];
      flip.push_back(static_cast<int64_t>(d));
    }
  }
  at::Tensor v = t.as_strided(sizes, strides, offset);
  if (!flip.empty()) v = v.flip(flip);
  return v.contiguous();
}

// numpy's cast of `x` (holding `from`'s bytes in LibTorch's storage type)
// to `to`. Unsigned 16/32/64-bit values sit in signed tensors: widened with
// their bits kept before any cast that reads their value.
at::Tensor Cast(at::Tensor x, npy::DType from, npy::DType to) {
  if (from == to) return x;
  switch (from) {
    case npy::DType::kUInt16:
      x = x.to(at::kInt).bitwise_and(0xFFFF);
      break;
    case npy::DType::kUInt32:
      x = x.to(at::kLong).bitwise_and(int64_t{0xFFFFFFFF});
      break;
    case npy::DType::kUInt64:
      if (IsFloatOrComplex(to)) {
        const at::Tensor high = at::bitwise_right_shift(x, 32).bitwise_and(int64_t{0xFFFFFFFF});
        const at::Tensor low = x.bitwise_and(int64_t{0xFFFFFFFF});
        x = high.to(at::kDouble) * 4294967296.0 + low.to(at::kDouble);
      }
      break;
    default:
      break;
  }
  return x.to(StorageTypeOf(to));
}

at::Tensor Pool(const at::Tensor& x, int64_t n, npy::DType to) {
  const int64_t r = x.dim();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 2);
  const int64_t h = x.size(r - 2) / n;
  const int64_t w = x.size(r - 1) / n;
  shape.insert(shape.end(), {h, n, w, n});
  const at::Tensor cropped = x.narrow(r - 2, 0, h * n).narrow(r - 1, 0, w * n);
  return cropped.reshape(shape).to(at::kDouble).mean({r - 1, r + 1}).to(StorageTypeOf(to));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const StoredTensor>> ComputeTorchView(TensorStore* store,
                                                                     const StoredTensor& tensor,
                                                                     const ViewPlan& plan) {
  at::Tensor result;
  try {
    at::Tensor x = Cast(Indexed(tensor.tensor(), plan), plan.source_dtype, plan.out.dtype);
    result = plan.pool > 1 ? Pool(x, plan.pool, plan.out.dtype) : x;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("view of '", tensor.info().handle, "' on ",
                                            tensor.info().device, ": ",
                                            e.what_without_backtrace()));
  }
  TensorStore::InsertOptions options;
  options.label = tensor.info().name;
  options.ephemeral = true;
  return store->Insert(result, plan.out.dtype, options);
}

}  // namespace npystream::views
