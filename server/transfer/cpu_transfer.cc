#include <cstring>

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
      done(absl::OutOfRangeError(
          absl::StrCat("payload range ", offset, "+", size, " is past ", nbytes, " bytes")));
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

class CpuPayloadWriter : public PayloadWriter {
 public:
  CpuPayloadWriter(char* dst, uint64_t nbytes) : dst_(dst), nbytes_(nbytes) {}

  void Write(HostChunk chunk) override {
    if (!status_.ok()) return;
    status_ = CheckWriteFits(chunk.size, written_, nbytes_);
    if (!status_.ok()) return;
    std::memcpy(dst_ + written_, chunk.data, chunk.size);
    written_ += chunk.size;
  }
  void WhenWritable(std::function<void(absl::Status)> ready) override { ready(status_); }
  void Flush(std::function<void(absl::Status)> done) override { done(status_); }

 private:
  char* const dst_;
  const uint64_t nbytes_;
  uint64_t written_ = 0;
  absl::Status status_;
};

class CpuTransfer : public Transfer {
 public:
  absl::StatusOr<std::unique_ptr<PayloadReader>> OpenReader(
      std::shared_ptr<const StoredTensor> tensor) override {
    if (tensor->host_data() == nullptr && tensor->info().nbytes > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("tensor '", tensor->info().handle, "' is on ", tensor->info().device,
                       " and this server has no CUDA transfer engine"));
    }
    return std::unique_ptr<PayloadReader>(new CpuPayloadReader(std::move(tensor)));
  }

  absl::StatusOr<std::unique_ptr<PayloadWriter>> OpenWriter(
      const std::string& device, void* dst, uint64_t nbytes,
      std::shared_ptr<const void> keepalive) override {
    (void)keepalive;  // writes complete before Write returns
    if (device != "cpu" && nbytes > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write to ", device, ": this server has no CUDA transfer engine"));
    }
    return std::unique_ptr<PayloadWriter>(new CpuPayloadWriter(static_cast<char*>(dst), nbytes));
  }
};

}  // namespace

std::unique_ptr<Transfer> NewCpuTransfer() { return std::make_unique<CpuTransfer>(); }

}  // namespace npystream
