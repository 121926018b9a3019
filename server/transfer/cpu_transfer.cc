#include "absl/strings/str_cat.h"
#include "server/transfer/transfer.h"

namespace npystream {
namespace {

class CpuPayloadReader : public PayloadReader {
 public:
  explicit CpuPayloadReader(std::shared_ptr<const StoredTensor> tensor)
      : tensor_(std::move(tensor)) {}

  void Read(uint64_t offset, size_t size, ChunkCallback done) override {
    const uint64_t nbytes = tensor_->info().nbytes;
    if (offset > nbytes || size > nbytes - offset) {
      done(absl::OutOfRangeError(absl::StrCat("payload range ", offset, "+", size,
                                              " is past ", nbytes, " bytes")));
      return;
    }
    HostChunk chunk;
    chunk.data = tensor_->host_data() + offset;
    chunk.size = size;
    chunk.owner = tensor_;  // the pin: the tensor outlives every chunk
    done(std::move(chunk));
  }

 private:
  std::shared_ptr<const StoredTensor> tensor_;
};

class CpuTransfer : public Transfer {
 public:
  absl::StatusOr<std::unique_ptr<PayloadReader>> OpenReader(
      std::shared_ptr<const StoredTensor> tensor) override {
    if (tensor->host_data() == nullptr && tensor->info().nbytes > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tensor '", tensor->info().handle, "' is on ", tensor->info().device,
          " and this server has no CUDA transfer engine"));
    }
    return std::unique_ptr<PayloadReader>(new CpuPayloadReader(std::move(tensor)));
  }
};

}  // namespace

std::unique_ptr<Transfer> NewCpuTransfer() { return std::make_unique<CpuTransfer>(); }

}  // namespace npystream
