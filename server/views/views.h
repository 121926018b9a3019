// Views: what a fetch sends for a tensor and a TensorView. The whole tensor
// as stored; a view of a host tensor gathered from its memory as it is sent
// (HostViewReader); a view of a GPU tensor computed there by LibTorch
// (TorchView), so only the view's bytes cross to the host.
#ifndef NPYSTREAM_SERVER_VIEWS_VIEWS_H_
#define NPYSTREAM_SERVER_VIEWS_VIEWS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"
#include "server/views/view_spec.h"

namespace npystream::views {

// The .npy file a fetch sends: of a tensor, or of a view of it.
struct NpySource {
  TensorInfo info;                        // what the bytes are; handle (and name) the tensor's
  std::string npy_header;                 // exactly what numpy.save writes for info.meta
  std::unique_ptr<PayloadReader> reader;  // info.nbytes payload bytes
  // Pins the tensor (or a device view's result) while the bytes are sent.
  std::shared_ptr<const StoredTensor> pin;
};

// What views report. Thread-safe.
class ViewMetrics {
 public:
  virtual ~ViewMetrics() = default;
  // A view of `view_bytes` was opened in place of `whole_bytes`.
  virtual void ViewOpened(uint64_t whole_bytes, uint64_t view_bytes) = 0;
};

// Thread-safe. The transfer engine and store must outlive it and every
// source it opens.
class Views {
 public:
  struct Options {
    Transfer* transfer = nullptr;    // not owned
    TensorStore* store = nullptr;    // not owned: holds device results while they are sent
    ViewMetrics* metrics = nullptr;  // not owned; may be null
    // Tests: compute host views with LibTorch, as device views are.
    bool torch_for_host = false;
  };
  explicit Views(const Options& options) : options_(options) {}

  // The source for `request` of `tensor`. INVALID_ARGUMENT naming the view's
  // defect (see ResolveView); what OpenReader refuses; RESOURCE_EXHAUSTED
  // when a device result does not fit the budget. The tensor is never
  // changed.
  absl::StatusOr<NpySource> Open(std::shared_ptr<const StoredTensor> tensor,
                                 const ViewRequest& request) const;

 private:
  const Options options_;
};

}  // namespace npystream::views

#endif  // NPYSTREAM_SERVER_VIEWS_VIEWS_H_
