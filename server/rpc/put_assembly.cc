#include "server/rpc/put_assembly.h"

#include "absl/strings/str_cat.h"
#include "npystream/v1/tensors.pb.h"
#include "proto/wire/wire_format.h"
#include "server/common/status_macros.h"
#include "server/rpc/tensor_info_proto.h"
#include "server/transfer/shm_file_writer.h"

namespace npystream::rpc {
namespace {

// PutRequest field numbers.
constexpr uint32_t kHeaderField = v1::PutRequest::kHeaderFieldNumber;
constexpr uint32_t kDataField = v1::PutRequest::kDataFieldNumber;

}  // namespace

PutAssembly::PutAssembly(TensorStore* store, Transfer* transfer, const PutLimits& limits)
    : store_(store), transfer_(transfer), limits_(limits) {}

absl::Status PutAssembly::Consume(const grpc::ByteBuffer& request, uint64_t* data_bytes) {
  // The payload writer may hold views of this message until it has copied
  // them. They point into the reader's slices (small slices keep their bytes
  // inline, inside the slice objects), so the reader itself is their owner.
  auto shared_reader = std::make_shared<wire::MessageReader>(request);
  wire::MessageReader& reader = *shared_reader;
  const std::shared_ptr<const void> message = shared_reader;
  wire::MessageReader::Field field;
  while (reader.Next(&field)) {
    if (field.number == kHeaderField && field.type == wire::kLengthDelimited) {
      if (have_header_message_) {
        return absl::InvalidArgumentError("PutRequest.header sent twice");
      }
      std::string bytes;
      npystream::v1::PutHeader header;
      if (!reader.ReadString(field.value, &bytes) || !header.ParseFromString(bytes)) {
        return absl::InvalidArgumentError("PutRequest.header is malformed");
      }
      have_header_message_ = true;
      spec_ = FromProto(header);
    } else if (field.number == kDataField && field.type == wire::kLengthDelimited) {
      if (!have_header_message_) {
        return absl::InvalidArgumentError(
            "the first PutRequest must carry the header (PutHeader), not data");
      }
      absl::Status status;
      *data_bytes += field.value;
      reader.ReadBytes(field.value, [&](const char* p, size_t n) {
        if (status.ok()) status = ConsumeData(p, n, message);
      });
      RETURN_IF_ERROR(status);
    } else if (!reader.Skip(field)) {
      break;
    }
  }
  if (reader.error()) return absl::InvalidArgumentError("PutRequest is malformed");
  return absl::OkStatus();
}

absl::Status PutAssembly::ConsumeData(const char* data, size_t size,
                                      const std::shared_ptr<const void>& message) {
  auto write = [&](const char* p, size_t n) {
    RETURN_IF_ERROR(writer_->Claim(n));
    payload_->Write(HostChunk{p, n, message});
    return absl::OkStatus();
  };
  if (writer_ != nullptr) return write(data, size);
  // Still inside the .npy header: gather just enough to parse it.
  while (size > 0 && writer_ == nullptr) {
    ASSIGN_OR_RETURN(size_t header_size, npy::PeekHeaderSize(npy_prefix_, limits_.parse));
    // Until the size is known, read no further than the preamble (10 bytes
    // in format 1.0, 12 in 2.0/3.0), so we never take payload bytes here.
    const size_t want = header_size != 0          ? header_size
                        : npy_prefix_.size() < 10 ? 10
                                                  : npy::kMaxPreambleBytes;
    if (npy_prefix_.size() < want) {
      const size_t take = std::min(size, want - npy_prefix_.size());
      npy_prefix_.append(data, take);
      data += take;
      size -= take;
    }
    ASSIGN_OR_RETURN(header_size, npy::PeekHeaderSize(npy_prefix_, limits_.parse));
    if (header_size != 0 && npy_prefix_.size() == header_size) {
      RETURN_IF_ERROR(StartTensor(npy_prefix_));
    }
  }
  if (size > 0) return write(data, size);
  return absl::OkStatus();
}

absl::Status PutAssembly::StartTensor(const std::string& header_bytes) {
  ASSIGN_OR_RETURN(writer_, BeginNpyPut(store_, header_bytes, limits_, &spec_));
  if (std::shared_ptr<ShmFile> file = writer_->shm_file(); file != nullptr) {
    ASSIGN_OR_RETURN(payload_, NewShmFileWriter(std::move(file), writer_->expected()));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(payload_, transfer_->OpenWriter(writer_->device(), writer_->destination(),
                                                   writer_->expected(), writer_->keepalive()));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> PutAssembly::Complete() {
  if (!have_header_message_) {
    return absl::InvalidArgumentError("Put stream ended without a PutHeader");
  }
  if (writer_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("npy stream truncated: it ended after ",
                                                   npy_prefix_.size(),
                                                   " bytes, inside the .npy header"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const StoredTensor> stored, writer_->Commit());
  payload_.reset();
  writer_.reset();
  return stored;
}

void PutAssembly::Abandon() {
  payload_.reset();  // copies in flight keep the tensor's memory alive
  writer_.reset();   // an unfinished Put frees its budget and name now
}

}  // namespace npystream::rpc
