#include "server/rpc/model_infer_reader.h"

#include <string>

namespace npystream::rpc {
namespace {

constexpr uint32_t kRawInputField = inference::ModelInferRequest::kRawInputContentsFieldNumber;

}  // namespace

ModelInferReader::ModelInferReader(const grpc::ByteBuffer& buffer)
    : buffer_(buffer), raw_reader_(buffer) {}

absl::Status ModelInferReader::Parse(inference::ModelInferRequest* meta, size_t* raw_count) {
  wire::MessageReader reader(buffer_);
  wire::MessageReader::Field field;
  std::string bytes, value;
  *raw_count = 0;
  while (reader.Next(&field)) {
    if (field.number == kRawInputField && field.type == wire::kLengthDelimited) {
      ++*raw_count;
      reader.Skip(field);
    } else if (field.type == wire::kLengthDelimited) {
      wire::AppendLengthDelimitedPrefix(&bytes, field.number, field.value);
      reader.ReadString(field.value, &value);
      bytes += value;
    } else {
      reader.Skip(field);  // no such top-level field in the protocol
    }
  }
  if (reader.error() || !meta->ParseFromString(bytes)) {
    return absl::InvalidArgumentError("ModelInferRequest is malformed");
  }
  return absl::OkStatus();
}

absl::Status ModelInferReader::Read(size_t index, const oip::Sink& sink) {
  if (index != next_) return absl::InternalError("raw inputs read out of order");
  wire::MessageReader::Field field;
  while (raw_reader_.Next(&field)) {
    if (field.number != kRawInputField || field.type != wire::kLengthDelimited) {
      raw_reader_.Skip(field);
      continue;
    }
    ++next_;
    absl::Status status;
    raw_reader_.ReadBytes(field.value, [&](const char* data, size_t size) {
      if (status.ok()) status = sink(data, size);
    });
    return status;
  }
  return absl::InvalidArgumentError("ModelInferRequest is malformed");
}

}  // namespace npystream::rpc
