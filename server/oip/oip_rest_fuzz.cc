// libFuzzer target: the Open Inference Protocol's REST infer body (JSON, and
// JSON + binary data with an Inference-Header-Content-Length) never crashes
// the parser, and a parsed request is consistent: one raw part per input,
// each inside the body or owned by the request, of the size its shape and
// datatype need.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "server/oip/oip_rest.h"
#include "server/oip/oip_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const bool with_binary = input.ConsumeBool();
  const uint64_t json_length = input.ConsumeIntegralInRange<uint64_t>(0, 4096);
  const std::string body = input.ConsumeRemainingBytesAsString();
  auto parsed = npystream::oip::ParseRestInfer(
      "m", body, with_binary ? std::optional<uint64_t>(json_length) : std::nullopt);
  if (!parsed.ok()) return 0;
  const auto& request = parsed->request;
  if (static_cast<int>(parsed->raw.size()) != request.inputs_size()) std::abort();
  for (int i = 0; i < request.inputs_size(); ++i) {
    const absl::string_view raw = parsed->raw[i];
    bool inside_body =
        raw.data() >= body.data() && raw.data() + raw.size() <= body.data() + body.size();
    bool owned = false;
    for (const std::string& o : parsed->owned) {
      owned = owned || (raw.data() >= o.data() && raw.data() + raw.size() <= o.data() + o.size());
    }
    if (!raw.empty() && !inside_body && !owned) std::abort();
    // The bytes the input's shape and datatype need, exactly.
    const auto type = npystream::oip::ParseDatatype(request.inputs(i).datatype());
    const std::vector<int64_t> shape(request.inputs(i).shape().begin(),
                                     request.inputs(i).shape().end());
    const auto count = npystream::oip::ElementCount(shape, request.inputs(i).name());
    if (!type.ok() || !count.ok() || raw.size() != *count * type->wire_bytes) std::abort();
  }
  return 0;
}
