// libFuzzer target: the Open Inference Protocol's gRPC ModelInfer as gRPC
// hands it over (bytes cut into slices at fuzzer-chosen points), through
// ModelInferReader and RunModelInfer into the real engine. Never crashes;
// what the reader accepts, protobuf parses to the same message and the same
// raw inputs; every raw output has the bytes its shape and datatype need;
// afterwards (kept outputs released) the store's budget is back where it was.
#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "server/oip/oip_types.h"
#include "server/rpc/model_infer_reader.h"
#include "server/testing/engine_fuzz_env.h"

namespace {

grpc::ByteBuffer Sliced(const std::string& bytes, const std::vector<size_t>& cuts) {
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  for (size_t cut : cuts) {
    const size_t n = std::min(cut, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, n);
    at += n;
  }
  slices.emplace_back(bytes.data() + at, bytes.size() - at);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// The reader agrees with protobuf's parse of the whole message.
void CheckAgainstProtobuf(const std::string& bytes, const grpc::ByteBuffer& buffer,
                          const inference::ModelInferRequest& meta, size_t raw_count) {
  inference::ModelInferRequest whole;
  if (!whole.ParseFromString(bytes)) {
    std::fprintf(stderr, "the reader took %zu bytes protobuf refuses\n", bytes.size());
    std::abort();
  }
  if (static_cast<int>(raw_count) != whole.raw_input_contents_size()) std::abort();
  npystream::rpc::ModelInferReader reader(buffer);
  for (size_t i = 0; i < raw_count; ++i) {
    std::string raw;
    const absl::Status read = reader.Read(i, [&raw](const char* data, size_t size) {
      raw.append(data, size);
      return absl::OkStatus();
    });
    if (!read.ok() || raw != whole.raw_input_contents(static_cast<int>(i))) std::abort();
  }
  // The reader drops top-level unknown scalars: compare without unknowns.
  whole.clear_raw_input_contents();
  whole.DiscardUnknownFields();
  inference::ModelInferRequest ours = meta;
  ours.DiscardUnknownFields();
  google::protobuf::util::DefaultFieldComparator floats;
  floats.set_treat_nan_as_equal(true);  // NaN contents are the same bytes
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&floats);
  std::string difference;
  differencer.ReportDifferencesToString(&difference);
  if (!differencer.Compare(ours, whole)) {
    std::fprintf(stderr, "reader and protobuf differ: %.2000s\n", difference.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  npystream::testing::EngineFuzzEnv& env = npystream::testing::GetEngineFuzzEnv();
  FuzzedDataProvider input(data, size);
  std::vector<size_t> cuts(input.ConsumeIntegralInRange<size_t>(0, 6));
  for (size_t& cut : cuts) cut = input.ConsumeIntegralInRange<size_t>(0, 256);
  const std::string bytes = input.ConsumeRemainingBytesAsString();
  const grpc::ByteBuffer buffer = Sliced(bytes, cuts);

  npystream::rpc::ModelInferReader reader(buffer);
  inference::ModelInferRequest meta;
  size_t raw_count = 0;
  if (!reader.Parse(&meta, &raw_count).ok()) return 0;
  CheckAgainstProtobuf(bytes, buffer, meta, raw_count);
  {
    npystream::oip::InferOptions options;
    options.limits = env.limits;
    options.max_inline_output_bytes = 1 << 20;
    auto outcome = npystream::oip::RunModelInfer(
        env.engine.get(), env.store.get(), meta, raw_count,
        [&reader](size_t index, const npystream::oip::Sink& sink) {
          return reader.Read(index, sink);
        },
        options);
    if (outcome.ok()) {
      const auto& response = outcome->response;
      if (static_cast<size_t>(response.outputs_size()) != outcome->raw.size()) std::abort();
      for (int i = 0; i < response.outputs_size(); ++i) {
        const auto& out = response.outputs(i);
        const auto& raw = outcome->raw[static_cast<size_t>(i)];
        if (raw == nullptr) {  // kept: released here
          auto handle = out.parameters().find("npystream_handle");
          if (handle == out.parameters().end() ||
              !env.store->Release(handle->second.string_param()).ok()) {
            std::abort();
          }
          continue;
        }
        const auto type = npystream::oip::ParseDatatype(out.datatype());
        const auto count = npystream::oip::ElementCount(
            std::vector<int64_t>(out.shape().begin(), out.shape().end()), out.name());
        if (!type.ok() || !count.ok() || raw->info().nbytes != *count * type->wire_bytes) {
          std::abort();
        }
      }
    }
  }
  if (env.store->budget().used("cpu") != env.baseline_bytes) std::abort();
  return 0;
}
