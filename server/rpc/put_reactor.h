// PutReactor: receives a streamed .npy file and writes its payload straight
// from the received slices into a preallocated tensor.
#ifndef NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "server/npy/npy_parser.h"
#include "server/rpc/call_gate.h"
#include "server/store/tensor_store.h"

namespace npystream::rpc {

struct PutLimits {
  npy::ParseLimits parse;
  uint64_t max_tensor_bytes = ~uint64_t{0};
};

// Owns itself: deletes itself in OnDone.
class PutReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(TensorStore* store, const PutLimits& limits, grpc::ByteBuffer* response,
             std::unique_ptr<CallTicket> ticket);
  void Start();

  void OnReadDone(bool ok) override;
  void OnDone() override;
  void OnCancel() override {}

 private:
  // Consumes one PutRequest; an error ends the call.
  absl::Status Consume();
  absl::Status ConsumeData(const char* data, size_t size);
  absl::Status StartTensor(const std::string& header_bytes);
  absl::Status Complete();
  void FinishWith(const absl::Status& status);

  TensorStore* const store_;
  const PutLimits limits_;
  grpc::ByteBuffer* const response_;
  const std::unique_ptr<CallTicket> ticket_;
  grpc::ByteBuffer request_;
  bool have_header_message_ = false;
  TensorStore::PutSpec spec_;
  std::string npy_prefix_;  // header bytes until the whole .npy header arrived
  std::unique_ptr<TensorWriter> writer_;
  int code_ = 0;
  std::string message_;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
