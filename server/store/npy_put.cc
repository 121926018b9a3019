#include "server/store/npy_put.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace npystream {

namespace {

absl::Status CheckSize(const npy::ArrayMeta& meta, const PutLimits& limits) {
  const uint64_t nbytes = meta.NumBytes();
  if (nbytes > limits.max_tensor_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "tensor of ", nbytes, " bytes exceeds --max-put-bytes (", limits.max_tensor_bytes, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorWriter>> BeginNpyPut(TensorStore* store,
                                                          absl::string_view header_bytes,
                                                          const PutLimits& limits,
                                                          TensorStore::PutSpec* spec) {
  ASSIGN_OR_RETURN(spec->meta, npy::ParseHeader(header_bytes, limits.parse));
  RETURN_IF_ERROR(CheckSize(spec->meta, limits));
  return store->BeginPut(*spec);
}

absl::StatusOr<TensorStore::Allocation> AllocateShm(TensorStore* store, absl::string_view descr,
                                                    const std::vector<int64_t>& shape,
                                                    const PutLimits& limits,
                                                    TensorStore::PutSpec* spec) {
  ASSIGN_OR_RETURN(spec->meta.dtype, npy::DTypeFromDescr(descr));
  if (static_cast<int>(shape.size()) > limits.parse.max_ndim) {
    return absl::InvalidArgumentError(absl::StrCat("shape has ", shape.size(),
                                                   " dimensions; at most ", limits.parse.max_ndim,
                                                   " (--max-ndim)"));
  }
  spec->meta.shape = shape;
  spec->meta.fortran_order = false;
  RETURN_IF_ERROR(npy::ValidateMeta(spec->meta));
  RETURN_IF_ERROR(CheckSize(spec->meta, limits));
  return store->Allocate(*spec);
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> StoreWholeNpy(TensorStore* store,
                                                                  absl::string_view npy,
                                                                  const PutLimits& limits) {
  ASSIGN_OR_RETURN(const size_t header_size, npy::PeekHeaderSize(npy, limits.parse));
  if (header_size == 0 || header_size > npy.size()) {
    return absl::InvalidArgumentError("npy header truncated");
  }
  TensorStore::PutSpec spec;
  spec.ephemeral = true;
  spec.device = "cpu";  // small, and already in host memory; the model moves it
  ASSIGN_OR_RETURN(std::unique_ptr<TensorWriter> writer,
                   BeginNpyPut(store, npy.substr(0, header_size), limits, &spec));
  RETURN_IF_ERROR(writer->Append(npy.data() + header_size, npy.size() - header_size));
  return writer->Commit();
}

}  // namespace npystream
