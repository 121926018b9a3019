// Transfer: turns a stored tensor's payload into host memory chunks that the
// RPC layer sends without copying. The CPU backend hands out views of the
// tensor itself; the CUDA backend stages device memory through pinned slots.
#ifndef NPYSTREAM_SERVER_TRANSFER_TRANSFER_H_
#define NPYSTREAM_SERVER_TRANSFER_TRANSFER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/store/tensor_store.h"

namespace npystream {

// Payload bytes in host memory; valid while `owner` is alive.
struct HostChunk {
  const char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;
};

using ChunkCallback = std::function<void(absl::StatusOr<HostChunk>)>;

// Reads one tensor's payload, one range at a time. Not thread-safe: one
// reader per fetch, at most one Read outstanding. Destroying the reader while
// a Read is outstanding is not allowed.
class PayloadReader {
 public:
  virtual ~PayloadReader() = default;
  // Produces payload bytes starting at `offset`: at least one and at most
  // `max_size` of them (a device backend stops at a staging-slot boundary),
  // and calls `done` once, possibly on another thread and possibly before
  // Read returns. Reads are sequential: each starts where the last ended.
  virtual void Read(uint64_t offset, size_t max_size, ChunkCallback done) = 0;
};

// Writes one tensor's payload into its memory, in order, as a Put's bytes
// arrive. Not thread-safe: one writer per Put. Destroying it abandons the
// bytes not yet copied; copies already in flight finish into memory kept
// alive by the writer's keepalive.
class PayloadWriter {
 public:
  virtual ~PayloadWriter() = default;
  // Queues the next payload bytes; `chunk.owner` keeps them valid until they
  // are copied out (see WhenWritable). Never blocks.
  virtual void Write(HostChunk chunk) = 0;
  // Calls `ready` once, possibly inside this call, when every queued byte has
  // been taken (a device backend: copied into staging slots), so the caller
  // may read more: backpressure without blocking a thread. An error status
  // means a copy failed and the Put must end.
  virtual void WhenWritable(std::function<void(absl::Status)> ready) = 0;
  // Calls `done` once, possibly inside this call, when every byte written so
  // far has reached the destination, or with the first copy error.
  virtual void Flush(std::function<void(absl::Status)> done) = 0;
};

// The bound every PayloadWriter keeps: OUT_OF_RANGE when `size` bytes written
// at `at` would run past the `nbytes` it was opened for.
inline absl::Status CheckWriteFits(size_t size, uint64_t at, uint64_t nbytes) {
  if (size <= nbytes - at) return absl::OkStatus();
  return absl::OutOfRangeError(
      absl::StrCat("write of ", size, " bytes at ", at, " is past ", nbytes, " bytes"));
}

// Thread-safe. Outlives every reader and writer it opens.
class Transfer {
 public:
  virtual ~Transfer() = default;
  // FAILED_PRECONDITION when this backend cannot read the tensor's device.
  virtual absl::StatusOr<std::unique_ptr<PayloadReader>> OpenReader(
      std::shared_ptr<const StoredTensor> tensor) = 0;
  // A writer of `nbytes` at `dst`, memory on `device` ("cpu", "cuda:N") that
  // `keepalive` keeps valid. FAILED_PRECONDITION when this backend cannot
  // write that device.
  virtual absl::StatusOr<std::unique_ptr<PayloadWriter>> OpenWriter(
      const std::string& device, void* dst, uint64_t nbytes,
      std::shared_ptr<const void> keepalive) = 0;
};

// The host-memory backend: chunks are views of the tensor, pinned by it;
// writes are copied into place at once.
std::unique_ptr<Transfer> NewCpuTransfer();

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_TRANSFER_H_
