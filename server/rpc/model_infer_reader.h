// ModelInferReader: a ModelInferRequest as gRPC received it (a ByteBuffer of
// slices), read without copying its raw inputs: the message minus
// raw_input_contents is parsed by protobuf (small), and each raw input's bytes
// are handed from the buffer's slices straight to the input tensor.
#ifndef NPYSTREAM_SERVER_RPC_MODEL_INFER_READER_H_
#define NPYSTREAM_SERVER_RPC_MODEL_INFER_READER_H_

#include <cstddef>

#include "absl/status/status.h"
#include "grpcpp/support/byte_buffer.h"
#include "inference/grpc_service.pb.h"
#include "proto/wire/wire_format.h"
#include "server/oip/oip_infer.h"

namespace npystream::rpc {

// Not thread-safe; `buffer` must outlive the reader.
class ModelInferReader {
 public:
  explicit ModelInferReader(const grpc::ByteBuffer& buffer);

  // Fills `meta` (without raw_input_contents) and counts the raw inputs.
  // INVALID_ARGUMENT "ModelInferRequest is malformed" for bytes protobuf
  // would not parse either.
  absl::Status Parse(inference::ModelInferRequest* meta, size_t* raw_count);
  // Raw input `index` to `sink`, piece by piece; indices must come in order
  // (INTERNAL otherwise). INVALID_ARGUMENT past the last raw input.
  absl::Status Read(size_t index, const oip::Sink& sink);

 private:
  const grpc::ByteBuffer& buffer_;
  wire::MessageReader raw_reader_;
  size_t next_ = 0;
};

}  // namespace npystream::rpc

#endif  // NPYSTREAM_SERVER_RPC_MODEL_INFER_READER_H_
