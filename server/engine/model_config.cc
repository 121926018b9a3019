#include "server/engine/model_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"

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

// A whole, non-negative, 32-bit count; nlohmann alone would wrap -1 and
// truncate 2.5.
absl::StatusOr<uint32_t> Count(const nlohmann::json& value, absl::string_view key) {
  if (!value.is_number_unsigned() || value.get<uint64_t>() > UINT32_MAX) {
    return Bad(absl::StrCat("'", key, "' must be a whole number from 0 to ", UINT32_MAX, ", not ",
                            value.dump()));
  }
  return value.get<uint32_t>();
}

absl::StatusOr<DynamicBatching> ParseDynamicBatching(const nlohmann::json& j) {
  if (!j.is_object()) return Bad("'dynamic_batching' must be an object");
  DynamicBatching b;
  for (const auto& [key, value] : j.items()) {
    if (key == "max_batch") {
      ASSIGN_OR_RETURN(b.max_batch, Count(value, "dynamic_batching.max_batch"));
    } else if (key == "max_queue_delay_us") {
      ASSIGN_OR_RETURN(b.max_queue_delay_us, Count(value, "dynamic_batching.max_queue_delay_us"));
    } else if (key == "preferred_batch_sizes") {
      if (!value.is_array()) return Bad("'dynamic_batching.preferred_batch_sizes' must be a list");
      for (const auto& size : value) {
        ASSIGN_OR_RETURN(uint32_t n, Count(size, "dynamic_batching.preferred_batch_sizes"));
        b.preferred_batch_sizes.push_back(n);
      }
    } else {
      return Bad(absl::StrCat("unknown key 'dynamic_batching.", key, "'"));
    }
  }
  if (b.max_batch == 0) return Bad("'dynamic_batching.max_batch' must be at least 1");
  for (uint32_t n : b.preferred_batch_sizes) {
    if (n == 0 || n > b.max_batch) {
      return Bad(absl::StrCat("'dynamic_batching.preferred_batch_sizes' entry ", n,
                              " must be from 1 to max_batch (", b.max_batch, ")"));
    }
  }
  std::sort(b.preferred_batch_sizes.begin(), b.preferred_batch_sizes.end());
  return b;
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
      } else if (key == "dynamic_batching") {
        ASSIGN_OR_RETURN(config.dynamic_batching, ParseDynamicBatching(value));
      } else if (key == "max_batch" || key == "instances") {
        ASSIGN_OR_RETURN((key == "max_batch" ? config.max_batch : config.instances),
                         Count(value, key));
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
