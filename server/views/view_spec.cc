#include "server/views/view_spec.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"

namespace npystream::views {
namespace {

absl::Status IndexError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("view index: ", what));
}

// An optional integer part of a slice, or an integer item.
absl::StatusOr<std::optional<int64_t>> ParsePart(absl::string_view part) {
  part = absl::StripAsciiWhitespace(part);
  if (part.empty()) return std::optional<int64_t>();
  int64_t value = 0;
  const bool digits = part.find_first_not_of("+-0123456789") == absl::string_view::npos;
  if (!digits || !absl::SimpleAtoi(part, &value)) {
    return IndexError(absl::StrCat("'", absl::CHexEscape(part),
                                   "' is not an integer (basic indexing only: integers, "
                                   "start:stop:step slices and one ...)"));
  }
  return std::optional<int64_t>(value);
}

// Python's slice.indices(size) and the resulting length.
struct SliceRange {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

SliceRange ResolveSlice(const IndexItem& item, int64_t size) {
  SliceRange r;
  r.step = item.step.value_or(1);
  const bool down = r.step < 0;
  const int64_t lower = down ? -1 : 0;
  const int64_t upper = down ? size - 1 : size;
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v.has_value()) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += size;  // no overflow: size >= 0 and x < 0
      return x < lower ? lower : x;
    }
    return x > upper ? upper : x;
  };
  r.start = clamp(item.start, down ? upper : lower);
  const int64_t stop = clamp(item.stop, down ? lower : upper);
  const __int128 span =
      down ? static_cast<__int128>(r.start) - stop : static_cast<__int128>(stop) - r.start;
  const __int128 step = down ? -static_cast<__int128>(r.step) : r.step;
  r.count = span > 0 ? static_cast<int64_t>((span + step - 1) / step) : 0;
  return r;
}

bool IsFloat(npy::DType t) {
  return t == npy::DType::kFloat16 || t == npy::DType::kFloat32 || t == npy::DType::kFloat64;
}

// numpy's kind order for same_kind casting: b < u < i < f < c.
int KindOrder(npy::DType t) {
  switch (t) {
    case npy::DType::kBool:
      return 0;
    case npy::DType::kUInt8:
    case npy::DType::kUInt16:
    case npy::DType::kUInt32:
    case npy::DType::kUInt64:
      return 1;
    case npy::DType::kInt8:
    case npy::DType::kInt16:
    case npy::DType::kInt32:
    case npy::DType::kInt64:
      return 2;
    case npy::DType::kFloat16:
    case npy::DType::kFloat32:
    case npy::DType::kFloat64:
      return 3;
    case npy::DType::kComplex64:
    case npy::DType::kComplex128:
      return 4;
  }
  return 5;
}

absl::StatusOr<npy::DType> ParseViewDType(absl::string_view text) {
  for (int i = 0; i < npy::kNumDTypes; ++i) {
    const auto t = static_cast<npy::DType>(i);
    if (text == npy::Name(t)) return t;
  }
  absl::StatusOr<npy::DType> t = npy::DTypeFromDescr(text);
  if (!t.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("view dtype: ", t.status().message()));
  }
  return t;
}

}  // namespace

absl::StatusOr<std::vector<IndexItem>> ParseIndex(absl::string_view text) {
  std::vector<IndexItem> items;
  if (absl::StripAsciiWhitespace(text).empty()) return items;
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  // a[0,] is a[(0,)]: one trailing comma is allowed after at least one item.
  if (parts.size() > 1 && absl::StripAsciiWhitespace(parts.back()).empty()) parts.pop_back();
  bool ellipsis = false;
  for (absl::string_view part : parts) {
    const absl::string_view item_text = absl::StripAsciiWhitespace(part);
    if (item_text.empty())
      return IndexError("an empty item (two commas in a row, or a lone comma)");
    IndexItem item;
    if (item_text == "...") {
      if (ellipsis) return IndexError("an index can only have a single ellipsis ('...')");
      ellipsis = true;
      item.kind = IndexItem::Kind::kEllipsis;
    } else if (item_text.find(':') == absl::string_view::npos) {
      ASSIGN_OR_RETURN(std::optional<int64_t> v, ParsePart(item_text));
      item.kind = IndexItem::Kind::kInteger;
      item.integer = *v;
    } else {
      std::vector<absl::string_view> bounds = absl::StrSplit(item_text, ':');
      if (bounds.size() > 3) {
        return IndexError(absl::StrCat("'", absl::CHexEscape(item_text),
                                       "' has more than two ':' (start:stop:step)"));
      }
      item.kind = IndexItem::Kind::kSlice;
      ASSIGN_OR_RETURN(item.start, ParsePart(bounds[0]));
      ASSIGN_OR_RETURN(item.stop, ParsePart(bounds[1]));
      if (bounds.size() == 3) {
        ASSIGN_OR_RETURN(item.step, ParsePart(bounds[2]));
        if (item.step.has_value() && *item.step == 0) {
          return IndexError("slice step cannot be zero");
        }
      }
    }
    items.push_back(item);
  }
  return items;
}

absl::Status CheckViewRequest(const ViewRequest& request) {
  RETURN_IF_ERROR(ParseIndex(request.index).status());
  if (request.dtype.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(npy::DType to, ParseViewDType(request.dtype));
  if (request.pool > 1 && !IsFloat(to)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "view pool: ", request.pool, " needs a float dtype; the view is ", npy::Name(to)));
  }
  return absl::OkStatus();
}

bool CanCastSameKind(npy::DType from, npy::DType to) { return KindOrder(from) <= KindOrder(to); }

bool ViewPlan::contiguous() const {
  if (casts() || pool > 1) return false;
  int64_t expected = 1;
  for (size_t d = indexed_shape.size(); d-- > 0;) {
    const int64_t n = indexed_shape[d];
    if (n == 0) return true;
    if (n != 1 && strides[d] != expected) return false;
    expected *= n;
  }
  return true;
}

absl::StatusOr<ViewPlan> ResolveView(const npy::ArrayMeta& meta, const ViewRequest& request) {
  ViewPlan plan;
  plan.source_dtype = meta.dtype;
  ASSIGN_OR_RETURN(std::vector<IndexItem> items, ParseIndex(request.index));
  const int ndim = static_cast<int>(meta.shape.size());
  int explicit_items = 0;
  for (const IndexItem& item : items) explicit_items += item.kind != IndexItem::Kind::kEllipsis;
  if (explicit_items > ndim) {
    return IndexError(absl::StrCat("too many indices: ", explicit_items, " for a ", ndim,
                                   "-d tensor of shape (", absl::StrJoin(meta.shape, ", "),
                                   ndim == 1 ? ",)" : ")"));
  }
  // C-order strides of the source, in elements.
  std::vector<int64_t> source_strides(ndim, 1);
  for (int d = ndim - 2; d >= 0; --d) {
    source_strides[d] = source_strides[d + 1] * meta.shape[d + 1];
  }
  int axis = 0;
  bool empty = false;
  auto keep_axis = [&](int64_t size, int64_t stride) {
    plan.indexed_shape.push_back(size);
    plan.strides.push_back(stride);
    empty = empty || size == 0;
  };
  for (const IndexItem& item : items) {
    switch (item.kind) {
      case IndexItem::Kind::kEllipsis:
        for (int fill = ndim - explicit_items; fill > 0; --fill, ++axis) {
          keep_axis(meta.shape[axis], source_strides[axis]);
        }
        break;
      case IndexItem::Kind::kInteger: {
        const int64_t size = meta.shape[axis];
        int64_t i = item.integer;
        if (i < 0) i += size;
        if (i < 0 || i >= size) {
          return IndexError(
              absl::StrCat(item.integer, " is out of range for axis ", axis, " of size ", size));
        }
        plan.offset += i * source_strides[axis];
        ++axis;
        break;
      }
      case IndexItem::Kind::kSlice: {
        const SliceRange r = ResolveSlice(item, meta.shape[axis]);
        if (r.count > 0) plan.offset += r.start * source_strides[axis];
        // (A step past the axis leaves one element: its stride is moot, and
        // multiplying it could overflow.)
        keep_axis(r.count, r.count > 1 ? r.step * source_strides[axis] : source_strides[axis]);
        ++axis;
        break;
      }
    }
  }
  for (; axis < ndim; ++axis) keep_axis(meta.shape[axis], source_strides[axis]);
  if (empty) plan.offset = 0;  // no element is read

  plan.out.dtype = meta.dtype;
  if (!request.dtype.empty()) {
    ASSIGN_OR_RETURN(npy::DType to, ParseViewDType(request.dtype));
    if (!CanCastSameKind(meta.dtype, to)) {
      return absl::InvalidArgumentError(absl::StrCat("view dtype: cannot cast ",
                                                     npy::Name(meta.dtype), " to ", npy::Name(to),
                                                     " under the same_kind rule"));
    }
    plan.out.dtype = to;
  }
  plan.out.shape = plan.indexed_shape;
  if (request.pool > 1) {
    const uint32_t n = request.pool;
    if (!IsFloat(plan.out.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("view pool: ", n, " needs a float dtype; the view is ",
                       npy::Name(plan.out.dtype), " (cast it with dtype)"));
    }
    const size_t vdim = plan.indexed_shape.size();
    if (vdim < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("view pool: ", n, " needs at least 2 axes; the view has ", vdim));
    }
    for (size_t d = vdim - 2; d < vdim; ++d) {
      if (plan.indexed_shape[d] < n) {
        return absl::InvalidArgumentError(absl::StrCat("view pool: ", n, " is larger than axis ", d,
                                                       " of size ", plan.indexed_shape[d]));
      }
      plan.out.shape[d] = plan.indexed_shape[d] / n;
    }
    plan.pool = n;
  }
  return plan;
}

}  // namespace npystream::views
