#include "server/daemon_config.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"
#include "nlohmann/json.hpp"
#include "server/common/byte_size.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace npystream {
namespace {

struct Flag {
  const char* name;
  const char* help;
  std::function<absl::Status(DaemonConfig*, const std::string&)> set;
  // Given more than once on the command line, the values add up (the
  // setter gets them comma-joined, as from the environment or a file).
  bool repeatable = false;
};

absl::Status SetInt(int* out, const char* name, const std::string& v, int min) {
  if (!absl::SimpleAtoi(v, out) || *out < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=", v, ": expected an integer >= ", min));
  }
  return absl::OkStatus();
}

absl::Status SetBytes(uint64_t* out, const char* name, const std::string& v) {
  auto parsed = ParseByteSize(v);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", parsed.status().message()));
  }
  *out = *parsed;
  return absl::OkStatus();
}

const std::vector<Flag>& Flags() {
  static const auto* flags = new std::vector<Flag>{
      {"listen", "gRPC address host:port (port 0 picks one) or unix:///path; repeatable",
       [](DaemonConfig* c, const std::string& v) {
         c->listen.clear();
         for (absl::string_view a : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           const std::string address(absl::StripAsciiWhitespace(a));
           if (absl::StartsWith(address, "unix:")) {
             if (!absl::StartsWith(address, "unix:///") && !absl::StartsWith(address, "unix:/")) {
               return absl::InvalidArgumentError(
                   absl::StrCat("--listen=", address, ": use unix:///absolute/path"));
             }
           } else if (address.rfind(':') == std::string::npos) {
             return absl::InvalidArgumentError(
                 absl::StrCat("--listen=", address, ": use host:port or unix:///path"));
           }
           c->listen.push_back(address);
         }
         if (c->listen.empty()) return absl::InvalidArgumentError("--listen needs an address");
         return absl::OkStatus();
       },
       /*repeatable=*/true},
      {"store-budget", "bytes of tensors kept per device, e.g. 8GiB",
       [](DaemonConfig* c, const std::string& v) {
         return SetBytes(&c->store_budget, "store-budget", v);
       }},
      {"device", "where Put/auto tensors live: auto, cpu or cuda:N",
       [](DaemonConfig* c, const std::string& v) {
         if (v != "auto" && v != "cpu" && !absl::StartsWith(v, "cuda")) {
           return absl::InvalidArgumentError(
               absl::StrCat("--device=", v, ": use auto, cpu or cuda:N"));
         }
         c->device = v;
         return absl::OkStatus();
       }},
      {"model-repository", "folder of models: DIR/<name>/model.pt",
       [](DaemonConfig* c, const std::string& v) {
         c->model_repository = v;
         return absl::OkStatus();
       }},
      {"http-listen", "admin HTTP address host:port (empty disables)",
       [](DaemonConfig* c, const std::string& v) {
         c->http_listen = v;
         return absl::OkStatus();
       }},
      {"http-allow-origin",
       "origins (scheme://host:port, comma list) whose pages may open the live WebSocket",
       [](DaemonConfig* c, const std::string& v) {
         c->http_allow_origins.clear();
         for (absl::string_view a : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           const std::string origin(absl::StripAsciiWhitespace(a));
           if (!absl::StartsWith(origin, "http://") && !absl::StartsWith(origin, "https://")) {
             return absl::InvalidArgumentError(absl::StrCat(
                 "--http-allow-origin=", origin, ": use scheme://host[:port], e.g. http://a:8000"));
           }
           c->http_allow_origins.push_back(origin);
         }
         return absl::OkStatus();
       }},
      {"max-put-bytes", "largest tensor one Put may create (0: budget only)",
       [](DaemonConfig* c, const std::string& v) {
         return SetBytes(&c->max_put_bytes, "max-put-bytes", v);
       }},
      {"max-header-bytes", "largest .npy header accepted",
       [](DaemonConfig* c, const std::string& v) {
         return SetBytes(&c->max_header_bytes, "max-header-bytes", v);
       }},
      {"max-ndim", "most dimensions a tensor may have (<= 32)",
       [](DaemonConfig* c, const std::string& v) {
         RETURN_IF_ERROR(SetInt(&c->max_ndim, "max-ndim", v, 0));
         if (c->max_ndim > 32) return absl::InvalidArgumentError("--max-ndim must be <= 32");
         return absl::OkStatus();
       }},
      {"max-concurrent-streams", "streams per client connection (0: gRPC default)",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->max_concurrent_streams, "max-concurrent-streams", v, 0);
       }},
      {"grpc-compression", "none or gzip: replies gzip-compressed for clients that accept it",
       [](DaemonConfig* c, const std::string& v) {
         if (v != "none" && v != "gzip") {
           return absl::InvalidArgumentError(
               absl::StrCat("--grpc-compression=", v, ": use none or gzip"));
         }
         c->grpc_gzip_replies = v == "gzip";
         return absl::OkStatus();
       }},
      {"drain-timeout", "seconds in-flight calls may take after SIGTERM",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->drain_timeout_seconds, "drain-timeout", v, 0);
       }},
      {"log-level", "debug, info, warning or error",
       [](DaemonConfig* c, const std::string& v) {
         LogLevel level;
         if (!ParseLogLevel(v, &level)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--log-level=", v, ": use debug, info, warning or error"));
         }
         c->log_level = v;
         return absl::OkStatus();
       }},
      {"tls-cert", "PEM certificate chain: TLS on gRPC and admin ports",
       [](DaemonConfig* c, const std::string& v) {
         c->tls_cert = v;
         return absl::OkStatus();
       }},
      {"tls-key", "PEM private key for --tls-cert",
       [](DaemonConfig* c, const std::string& v) {
         c->tls_key = v;
         return absl::OkStatus();
       }},
      {"tls-client-ca", "PEM CA: clients must present a certificate it signed (mTLS)",
       [](DaemonConfig* c, const std::string& v) {
         c->tls_client_ca = v;
         return absl::OkStatus();
       }},
      {"auth-token-file", "file whose first line is the bearer token clients must send",
       [](DaemonConfig* c, const std::string& v) {
         c->auth_token_file = v;
         return absl::OkStatus();
       }},
      {"idle-timeout", "seconds a Put/Fetch stream may make no progress (0: never)",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->idle_timeout_seconds, "idle-timeout", v, 0);
       }},
      {"staging-bytes", "pinned staging ring per GPU, e.g. 256MiB",
       [](DaemonConfig* c, const std::string& v) {
         return SetBytes(&c->staging_bytes, "staging-bytes", v);
       }},
      {"staging-chunk", "staging ring slot (copy chunk) size, e.g. 4MiB",
       [](DaemonConfig* c, const std::string& v) {
         return SetBytes(&c->staging_chunk, "staging-chunk", v);
       }},
      {"copy-streams", "CUDA streams for device-to-host copies",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->copy_streams, "copy-streams", v, 1);
       }},
      {"torch-threads", "LibTorch intra-op threads per forward pass (0: half the cores)",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->torch_threads, "torch-threads", v, 0);
       }},
      {"torch-interop-threads", "LibTorch inter-op threads (0: LibTorch's default)",
       [](DaemonConfig* c, const std::string& v) {
         return SetInt(&c->torch_interop_threads, "torch-interop-threads", v, 0);
       }},
      {"shm-dir", "same-host tensor files on tmpfs, e.g. /dev/shm/npystream (empty: off)",
       [](DaemonConfig* c, const std::string& v) {
         if (!v.empty() && v[0] != '/') {
           return absl::InvalidArgumentError(
               absl::StrCat("--shm-dir=", v, ": use an absolute path"));
         }
         c->shm_dir = v;
         return absl::OkStatus();
       }},
      {"shm-group", "group (name or number) that may read the --shm-dir files",
       [](DaemonConfig* c, const std::string& v) {
         c->shm_group = v;
         return absl::OkStatus();
       }},
      {"replica-id", "this daemon's id in server-chosen handles (default: the host/pod name)",
       [](DaemonConfig* c, const std::string& v) {
         if (v.empty() || v.size() > 63 ||
             v.find_first_not_of(
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
                 std::string::npos) {
           return absl::InvalidArgumentError(
               absl::StrCat("--replica-id=", v, ": use 1 to 63 characters of [A-Za-z0-9_.-]"));
         }
         c->replica_id = v;
         return absl::OkStatus();
       }},
      {"peer-address",
       "how to reach another replica, {replica} standing for its id "
       "(e.g. {replica}.npystream-peers.default.svc.cluster.local:50051); clients route by it",
       [](DaemonConfig* c, const std::string& v) {
         if (!v.empty() && v.find("{replica}") == std::string::npos) {
           return absl::InvalidArgumentError(
               absl::StrCat("--peer-address=", v, ": the template needs {replica}"));
         }
         c->peer_address = v;
         return absl::OkStatus();
       }},
      {"peer-connect-timeout",
       "seconds a call relayed to another replica may wait to connect before UNAVAILABLE",
       [](DaemonConfig* c, const std::string& v) {
         double seconds = 0;
         if (!absl::SimpleAtod(v, &seconds) || !(seconds > 0) || seconds > 3600) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--peer-connect-timeout=", v, ": expected seconds, more than 0 and at most 3600"));
         }
         c->peer_connect_timeout_seconds = seconds;
         return absl::OkStatus();
       }},
      {"config", "JSON file of flag values ({\"store-budget\": \"8GiB\", ...})",
       [](DaemonConfig* c, const std::string& v) {
         c->config_file = v;
         return absl::OkStatus();
       }},
      {"log-format", "text or json",
       [](DaemonConfig* c, const std::string& v) {
         if (v != "text" && v != "json") {
           return absl::InvalidArgumentError(
               absl::StrCat("--log-format=", v, ": use text or json"));
         }
         c->log_format = v;
         return absl::OkStatus();
       }},
  };
  return *flags;
}

std::string EnvName(const char* flag) {
  return "NPYSTREAM_" + absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}}));
}

}  // namespace

absl::Status ApplyConfigJson(absl::string_view json_text, DaemonConfig* config) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  for (const auto& [key, value] : j.items()) {
    const Flag* flag = nullptr;
    for (const Flag& f : Flags()) {
      // "peer_address" and "peer-address" name the same flag.
      if (absl::StrReplaceAll(key, {{"_", "-"}}) == f.name && key != "config") flag = &f;
    }
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown key '", key, "'"));
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (value.is_array() && flag->repeatable) {  // {"listen": ["a", "b"]}
      std::vector<std::string> items;
      for (const auto& item : value) {
        items.push_back(item.is_string() ? item.get<std::string>() : item.dump());
      }
      text = absl::StrJoin(items, ",");
    }
    RETURN_IF_ERROR(flag->set(config, text));
  }
  return absl::OkStatus();
}

absl::StatusOr<DaemonConfig> ParseDaemonConfig(
    const std::vector<std::string>& args, const std::function<const char*(const char*)>& getenv) {
  DaemonConfig config;
  // The config file comes first so the environment and flags override it.
  std::string config_file;
  if (const char* v = getenv("NPYSTREAM_CONFIG")) config_file = v;
  for (size_t i = 0; i < args.size(); ++i) {
    if (absl::StartsWith(args[i], "--config=")) config_file = args[i].substr(9);
    if (args[i] == "--config" && i + 1 < args.size()) config_file = args[i + 1];
  }
  if (!config_file.empty()) {
    auto text = ReadFileToString(config_file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", config_file, ": cannot read (", text.status().message(), ")"));
    }
    if (absl::Status s = ApplyConfigJson(*text, &config); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--config ", config_file, ": ", s.message()));
    }
    config.config_file = config_file;
  }
  for (const Flag& flag : Flags()) {
    if (const char* v = getenv(EnvName(flag.name).c_str())) {
      absl::Status s = flag.set(&config, v);
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(EnvName(flag.name), ": ", s.message()));
      }
    }
  }
  std::map<std::string, std::string> repeated;  // values of repeatable flags so far
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : Flags()) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    if (flag->repeatable) {
      auto [it, first] = repeated.emplace(name, value);
      if (!first) value = it->second = absl::StrCat(it->second, ",", value);
    }
    RETURN_IF_ERROR(flag->set(&config, value));
  }
  return config;
}

std::string DaemonUsage() {
  std::string out =
      "usage: npystreamd [--flag=value ...] [--check-config]\n"
      "  --check-config            parse flags, environment and --config, then exit\n\n";
  for (const Flag& f : Flags()) {
    absl::StrAppend(&out, "  --", f.name, std::string(24 - std::string(f.name).size(), ' '), f.help,
                    " [", EnvName(f.name), "]\n");
  }
  return out;
}

}  // namespace npystream
