// PutAssembly: the logic of one streamed Put, apart from gRPC's reactor:
// PutRequest messages in (a PutHeader, then data parts whose concatenation
// is a .npy file split anywhere), the tensor out. Payload bytes go to the
// transfer engine as views of the received messages, never copied here.
#ifndef NPYSTREAM_SERVER_RPC_PUT_ASSEMBLY_H_
#define NPYSTREAM_SERVER_RPC_PUT_ASSEMBLY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace npystream::rpc {

// Not thread-safe: one per Put. Borrowed pointers outlive it.
class PutAssembly {
 public:
  PutAssembly(TensorStore* store, Transfer* transfer, const PutLimits& limits);

  // Takes one PutRequest (the reactor's buffer; its bytes may be cleared
  // afterwards: the views handed on keep their own reference). Adds the data
  // bytes it carried to *data_bytes. INVALID_ARGUMENT naming what is wrong
  // (order, a malformed message, the .npy header); the store's codes.
  absl::Status Consume(const grpc::ByteBuffer& request, uint64_t* data_bytes);
  // Where the payload is being written; null until the .npy header arrived.
  PayloadWriter* payload() const { return payload_.get(); }
  // The Put's name (empty: the store picks the handle).
  const std::string& name() const { return spec_.name; }
  // After the stream ended and payload() was flushed: publishes the tensor.
  // INVALID_ARGUMENT for a stream without a header or cut short.
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Complete();
  // Drops an unfinished Put now (its budget and name return); copies in
  // flight keep the tensor's memory alive.
  void Abandon();

 private:
  // `message` owns the memory `data` points into.
  absl::Status ConsumeData(const char* data, size_t size,
                           const std::shared_ptr<const void>& message);
  absl::Status StartTensor(const std::string& header_bytes);

  TensorStore* const store_;
  Transfer* const transfer_;
  const PutLimits limits_;
  bool have_header_message_ = false;
  TensorStore::PutSpec spec_;
  std::string npy_prefix_;  // header bytes until the whole .npy header arrived
  std::unique_ptr<TensorWriter> writer_;
  std::unique_ptr<PayloadWriter> payload_;  // writes into writer_'s tensor
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_PUT_ASSEMBLY_H_
