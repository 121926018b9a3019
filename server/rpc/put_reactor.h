// PutReactor: receives a streamed .npy file and hands its payload, as views
// of the received slices, to the transfer engine, which writes it into a
// tensor preallocated on its device (a GPU Put goes through the staging ring;
// the next message is read only when the engine has taken the last one).
#ifndef NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
#define NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_

#include <atomic>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "server/npy/npy_parser.h"
#include "server/rpc/call_gate.h"
#include "server/store/npy_put.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace npystream::rpc {

// Owns itself: deletes itself in OnDone.
class PutReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(TensorStore* store, Transfer* transfer, const PutLimits& limits,
             grpc::ByteBuffer* response, std::unique_ptr<CallTicket> ticket);
  void Start();

  void OnReadDone(bool ok) override;
  void OnDone() override;
  void OnCancel() override;

 private:
  // Consumes one PutRequest; an error ends the call.
  absl::Status Consume();
  // `message` owns the memory `data` points into.
  absl::Status ConsumeData(const char* data, size_t size,
                           const std::shared_ptr<const void>& message);
  absl::Status StartTensor(const std::string& header_bytes);
  // The client half-closed: waits for the payload's copies, then Complete.
  void EndOfStream();
  absl::Status Complete();
  void FinishWith(const absl::Status& status);

  TensorStore* const store_;
  Transfer* const transfer_;
  const PutLimits limits_;
  grpc::ByteBuffer* const response_;
  const std::unique_ptr<CallTicket> ticket_;
  grpc::ByteBuffer request_;
  bool have_header_message_ = false;
  TensorStore::PutSpec spec_;
  std::string npy_prefix_;  // header bytes until the whole .npy header arrived
  std::unique_ptr<TensorWriter> writer_;
  std::unique_ptr<PayloadWriter> payload_;  // writes into writer_'s tensor
  int code_ = 0;
  std::string message_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_PUT_REACTOR_H_
