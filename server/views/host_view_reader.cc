#include "server/views/host_view_reader.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/views/view_kernels.h"

namespace npystream::views {
namespace {

class HostViewReader : public PayloadReader {
 public:
  HostViewReader(std::shared_ptr<const StoredTensor> tensor, ViewPlan plan)
      : tensor_(std::move(tensor)),
        plan_(std::move(plan)),
        nbytes_(plan_.out.NumBytes()),
        source_size_(npy::ItemSize(plan_.source_dtype)),
        out_size_(npy::ItemSize(plan_.out.dtype)),
        copy_(CopyRunFor(plan_.source_dtype, plan_.out.dtype)),
        pool_(plan_.pool > 1 ? PoolRunFor(plan_.source_dtype, plan_.out.dtype) : nullptr) {}

  void Read(uint64_t offset, size_t size, ChunkCallback done) override {
    if (offset > nbytes_ || size > nbytes_ - offset) {
      done(absl::OutOfRangeError(
          absl::StrCat("view range ", offset, "+", size, " is past ", nbytes_, " bytes")));
      return;
    }
    HostChunk chunk;
    if (plan_.contiguous()) {
      chunk.data = tensor_->host_data() + plan_.offset * source_size_ + offset;
      chunk.size = size;
      chunk.owner = tensor_;
      done(std::move(chunk));
      return;
    }
    size = std::min(size, kMaxGatherBytes);
    // Whole elements covering [offset, offset + size): a Range may start
    // inside one.
    const uint64_t first = offset / out_size_;
    const uint64_t last = (offset + size + out_size_ - 1) / out_size_;
    std::shared_ptr<char[]> buffer(new char[(last - first) * out_size_]);
    if (pool_ != nullptr) {
      GatherPooled(first, last, buffer.get());
    } else {
      Gather(first, last, buffer.get());
    }
    chunk.data = buffer.get() + (offset - first * out_size_);
    chunk.size = size;
    chunk.owner = std::move(buffer);
    done(std::move(chunk));
  }

 private:
  const char* SourceAt(int64_t element) const {
    return tensor_->host_data() + element * source_size_;
  }

  // The multi-index of element `e` of a C-order `shape`.
  static std::vector<int64_t> Unravel(uint64_t e, const std::vector<int64_t>& shape) {
    std::vector<int64_t> index(shape.size(), 0);
    for (size_t d = shape.size(); d-- > 0;) {
      index[d] = static_cast<int64_t>(e % shape[d]);
      e /= shape[d];
    }
    return index;
  }

  // Advances `index` by `n` along its last axis, carrying into the others.
  static void Advance(std::vector<int64_t>* index, int64_t n, const std::vector<int64_t>& shape) {
    size_t d = shape.size() - 1;
    (*index)[d] += n;
    while (d > 0 && (*index)[d] >= shape[d]) {
      (*index)[d] = 0;
      ++(*index)[--d];
    }
  }

  void Gather(uint64_t first, uint64_t last, char* dst) const {
    const std::vector<int64_t>& shape = plan_.indexed_shape;
    if (shape.empty()) {  // a 0-d view: one element
      copy_(SourceAt(plan_.offset), 0, 1, dst);
      return;
    }
    const size_t r = shape.size();
    std::vector<int64_t> index = Unravel(first, shape);
    for (uint64_t e = first; e < last;) {
      const int64_t n =
          std::min<int64_t>(shape[r - 1] - index[r - 1], static_cast<int64_t>(last - e));
      int64_t at = plan_.offset;
      for (size_t d = 0; d < r; ++d) at += index[d] * plan_.strides[d];
      copy_(SourceAt(at), plan_.strides[r - 1], n, dst);
      dst += n * out_size_;
      e += n;
      Advance(&index, n, shape);
    }
  }

  void GatherPooled(uint64_t first, uint64_t last, char* dst) const {
    const std::vector<int64_t>& shape = plan_.out.shape;
    const size_t r = shape.size();  // >= 2 (checked by ResolveView)
    const int64_t n = plan_.pool;
    const int64_t row_stride = plan_.strides[r - 2];
    const int64_t col_stride = plan_.strides[r - 1];
    std::vector<int64_t> index = Unravel(first, shape);
    for (uint64_t e = first; e < last;) {
      const int64_t count =
          std::min<int64_t>(shape[r - 1] - index[r - 1], static_cast<int64_t>(last - e));
      int64_t at = plan_.offset;
      for (size_t d = 0; d + 2 < r; ++d) at += index[d] * plan_.strides[d];
      at += index[r - 2] * n * row_stride + index[r - 1] * n * col_stride;
      pool_(SourceAt(at), row_stride, col_stride, plan_.pool, count, dst);
      dst += count * out_size_;
      e += count;
      Advance(&index, count, shape);
    }
  }

  const std::shared_ptr<const StoredTensor> tensor_;
  const ViewPlan plan_;
  const uint64_t nbytes_;
  const int64_t source_size_;
  const int64_t out_size_;
  const CopyRun copy_;
  const PoolRun pool_;
};

}  // namespace

std::unique_ptr<PayloadReader> NewHostViewReader(std::shared_ptr<const StoredTensor> tensor,
                                                 ViewPlan plan) {
  return std::make_unique<HostViewReader>(std::move(tensor), std::move(plan));
}

}  // namespace npystream::views
