// libFuzzer target: a .npy stream cut at fuzzer-chosen boundaries into
// PutRequest messages, through the real PutAssembly into a real (CPU) store.
// Never crashes; a Put that completes holds exactly the stream's payload; an
// unfinished one gives its budget back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "npystream/v1/tensors.pb.h"
#include "server/npy/npy_parser.h"
#include "server/rpc/put_assembly.h"
#include "server/store/tensor_store.h"
#include "server/transfer/transfer.h"

namespace {

grpc::ByteBuffer Message(const npystream::v1::PutRequest& request) {
  grpc::Slice slice(request.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using npystream::TensorStore;
  static TensorStore* store = [] {
    TensorStore::Options options;
    options.budget_bytes = 16 << 20;  // bounds what a header may ask for
    return TensorStore::Create(options)->release();
  }();
  static npystream::Transfer* transfer = npystream::NewCpuTransfer().release();

  FuzzedDataProvider input(data, size);
  const bool send_header = input.ConsumeIntegralInRange<int>(0, 15) != 0;
  const bool header_twice = input.ConsumeIntegralInRange<int>(0, 31) == 0;
  std::vector<size_t> cuts(input.ConsumeIntegralInRange<size_t>(0, 8));
  for (size_t& cut : cuts) cut = input.ConsumeIntegralInRange<size_t>(0, 300);
  const std::string npy = input.ConsumeRemainingBytesAsString();

  npystream::PutLimits limits;
  npystream::rpc::PutAssembly assembly(store, transfer, limits);
  uint64_t data_bytes = 0;
  absl::Status status;
  if (send_header) {
    npystream::v1::PutRequest header;
    header.mutable_header()->set_device("cpu");
    status = assembly.Consume(Message(header), &data_bytes);
    if (header_twice && status.ok()) {
      if (assembly.Consume(Message(header), &data_bytes).ok()) std::abort();  // must refuse
      return 0;
    }
  }
  size_t at = 0;
  for (size_t i = 0; status.ok() && at < npy.size(); ++i) {
    const size_t n = i < cuts.size() ? std::min(cuts[i], npy.size() - at) : npy.size() - at;
    npystream::v1::PutRequest part;
    part.set_data(npy.substr(at, n));
    status = assembly.Consume(Message(part), &data_bytes);
    at += n;
  }
  if (!status.ok()) {
    assembly.Abandon();
  } else {
    auto stored = assembly.Complete();
    if (stored.ok()) {
      // Everything after the .npy header is the payload, byte for byte
      // (C order; a Fortran-order stream is transposed, so only its size).
      auto header_size = npystream::npy::PeekHeaderSize(npy, limits.parse);
      if (!header_size.ok() || *header_size == 0) std::abort();
      const auto& info = (*stored)->info();
      if (info.nbytes != npy.size() - *header_size) std::abort();
      const auto meta = npystream::npy::ParseHeader(npy.substr(0, *header_size), limits.parse);
      if (!meta.ok()) std::abort();
      if ((!meta->fortran_order || meta->shape.size() < 2) && info.nbytes > 0 &&
          std::memcmp((*stored)->host_data(), npy.data() + *header_size, info.nbytes) != 0) {
        std::abort();
      }
      if (!store->Release(info.handle).ok()) std::abort();
    } else {
      assembly.Abandon();
    }
  }
  // Nothing stays reserved: every Put here was released or abandoned.
  if (store->budget().used("cpu") != 0) std::abort();
  return 0;
}
