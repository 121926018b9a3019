// NpyPut: the one path from a .npy header to a tensor being written into the
// store, shared by streamed Puts, inline Infer inputs and HTTP infer bodies.
#ifndef NPYSTREAM_SERVER_STORE_NPY_PUT_H_
#define NPYSTREAM_SERVER_STORE_NPY_PUT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/npy/npy_parser.h"
#include "server/store/tensor_store.h"

namespace npystream {

struct PutLimits {
  npy::ParseLimits parse;
  uint64_t max_tensor_bytes = ~uint64_t{0};
};

// Parses the complete .npy header `header_bytes` into `spec->meta`, checks
// the tensor against the limits and starts the Put in the store.
// INVALID_ARGUMENT for a bad header; RESOURCE_EXHAUSTED naming
// --max-put-bytes or the budget; the store's codes otherwise.
absl::StatusOr<std::unique_ptr<TensorWriter>> BeginNpyPut(TensorStore* store,
                                                          absl::string_view header_bytes,
                                                          const PutLimits& limits,
                                                          TensorStore::PutSpec* spec);

// Same-host Put, step 1 (TensorStore::Allocate) for a numpy `descr` and
// `shape`, under the same limits. INVALID_ARGUMENT naming a bad dtype or
// shape; RESOURCE_EXHAUSTED naming --max-put-bytes or the budget.
absl::StatusOr<TensorStore::Allocation> AllocateShm(TensorStore* store, absl::string_view descr,
                                                    const std::vector<int64_t>& shape,
                                                    const PutLimits& limits,
                                                    TensorStore::PutSpec* spec);

// Stores a whole .npy held in memory (an inline Infer input) as an ephemeral
// host tensor. Errors as BeginNpyPut, plus INVALID_ARGUMENT for a truncated
// file or a payload of the wrong size.
absl::StatusOr<std::shared_ptr<const StoredTensor>> StoreWholeNpy(TensorStore* store,
                                                                  absl::string_view npy,
                                                                  const PutLimits& limits);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_NPY_PUT_H_
