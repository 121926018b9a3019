// Shorthands for tests that fill a TensorStore directly.
#ifndef NPYSTREAM_SERVER_TESTING_STORE_TESTING_H_
#define NPYSTREAM_SERVER_TESTING_STORE_TESTING_H_

#include <memory>
#include <string>

#include "server/store/tensor_store.h"

namespace npystream::testing {

// Inserts `tensor` under `name` ("" : the store picks a handle).
inline absl::StatusOr<std::shared_ptr<const StoredTensor>> InsertNamed(TensorStore* store,
                                                                       const at::Tensor& tensor,
                                                                       npy::DType dtype,
                                                                       const std::string& name,
                                                                       uint32_t ttl_seconds = 0) {
  TensorStore::InsertOptions options;
  options.name = name;
  options.ttl_seconds = ttl_seconds;
  return store->Insert(tensor, dtype, options);
}

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_STORE_TESTING_H_
