#include "server/engine/model_config.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace npystream {
namespace {

absl::StatusOr<npy::DType> DTypeFromText(const std::string& text) {
  for (int i = 0; i < npy::kNumDTypes; ++i) {
    const auto d = static_cast<npy::DType>(i);
    if (text == npy::Name(d)) return d;
  }
  return npy::DTypeFromDescr(text);
}

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", what));
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("not a JSON object");
  ModelConfig config;
  try {
    for (const auto& [key, value] : j.items()) {
      if (key == "device") {
        config.device = value.get<std::string>();
      } else if (key == "inputs") {
        for (const auto& in : value) {
          InputSpec spec;
          spec.name = in.at("name").get<std::string>();
          if (in.contains("dtype")) {
            auto d = DTypeFromText(in["dtype"].get<std::string>());
            if (!d.ok())
              return Bad(absl::StrCat("input '", spec.name, "': ", d.status().message()));
            spec.dtype = *d;
          }
          if (in.contains("shape")) spec.shape = in["shape"].get<std::vector<int64_t>>();
          config.inputs.push_back(std::move(spec));
        }
      } else if (key == "outputs") {
        config.outputs = value.get<std::vector<std::string>>();
      } else if (key == "layers") {
        config.layers = value.get<std::vector<std::string>>();
      } else if (key == "max_batch" || key == "instances") {
        // Whole, non-negative and 32-bit: nlohmann would wrap -1 or truncate 2.5.
        if (!value.is_number_unsigned() || value.get<uint64_t>() > UINT32_MAX) {
          return Bad(absl::StrCat("'", key, "' must be a whole number from 0 to ", UINT32_MAX,
                                  ", not ", value.dump()));
        }
        (key == "max_batch" ? config.max_batch : config.instances) = value.get<uint32_t>();
        if (config.instances == 0) return Bad("'instances' must be at least 1");
      } else {
        return Bad(absl::StrCat("unknown key '", key, "'"));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Bad(e.what());
  }
  return config;
}

}  // namespace npystream
