#include "server/common/log.h"

#include <unistd.h>

#include <atomic>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace npystream {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

// Escapes for a double-quoted string: JSON's rules, which text output uses too.
void AppendEscaped(absl::string_view s, std::string* out) {
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          absl::StrAppend(out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
}

void AppendQuoted(absl::string_view s, std::string* out) {
  out->push_back('"');
  AppendEscaped(s, out);
  out->push_back('"');
}

bool NeedsQuotes(absl::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return absl::StrCat(d);
}

}  // namespace

void LogValue::AppendText(std::string* out) const {
  if (std::holds_alternative<std::string>(v_)) {
    return LogValue(absl::string_view(std::get<std::string>(v_))).AppendText(out);
  }
  if (const auto* s = std::get_if<absl::string_view>(&v_)) {
    if (NeedsQuotes(*s)) {
      AppendQuoted(*s, out);
    } else {
      out->append(s->data(), s->size());
    }
  } else if (const auto* i = std::get_if<int64_t>(&v_)) {
    absl::StrAppend(out, *i);
  } else if (const auto* u = std::get_if<uint64_t>(&v_)) {
    absl::StrAppend(out, *u);
  } else if (const auto* d = std::get_if<double>(&v_)) {
    out->append(FormatDouble(*d));
  } else {
    out->append(std::get<bool>(v_) ? "true" : "false");
  }
}

void LogValue::AppendJson(std::string* out) const {
  if (const auto* owned = std::get_if<std::string>(&v_)) {
    AppendQuoted(*owned, out);
  } else if (const auto* s = std::get_if<absl::string_view>(&v_)) {
    AppendQuoted(*s, out);
  } else if (const auto* d = std::get_if<double>(&v_); d != nullptr && !std::isfinite(*d)) {
    AppendQuoted(FormatDouble(*d), out);  // JSON has no NaN or infinities
  } else {
    AppendText(out);
  }
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
void SetLogJson(bool json) { g_json = json; }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warning" || text == "warn") {
    *level = LogLevel::kWarning;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

void ConfigureLogging(absl::string_view level, absl::string_view format) {
  LogLevel parsed = LogLevel::kInfo;
  ParseLogLevel(level, &parsed);
  SetLogLevel(parsed);
  SetLogJson(format == "json");
}

std::string FormatLogLine(absl::string_view ts, LogLevel level, absl::string_view event,
                          LogFields fields, bool json) {
  std::string line;
  if (json) {
    line = "{\"ts\":";
    AppendQuoted(ts, &line);
    absl::StrAppend(&line, ",\"level\":\"", LevelName(level), "\",\"event\":");
    AppendQuoted(event, &line);
    for (const LogField& f : fields) {
      line.push_back(',');
      AppendQuoted(f.key, &line);
      line.push_back(':');
      f.value.AppendJson(&line);
    }
    line += "}\n";
  } else {
    absl::StrAppend(&line, ts, " ", LevelName(level), " ", event);
    for (const LogField& f : fields) {
      absl::StrAppend(&line, " ", f.key, "=");
      f.value.AppendText(&line);
    }
    line += "\n";
  }
  return line;
}

void Log(LogLevel level, absl::string_view event, LogFields fields) {
  if (static_cast<int>(level) < g_level.load()) return;
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string line = FormatLogLine(ts, level, event, fields, g_json.load());
  // One write per line so concurrent lines never interleave.
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

void LogError(absl::string_view event, const absl::Status& status) {
  Log(LogLevel::kError, event,
      {{"code", absl::StatusCodeToString(status.code())}, {"error", status.message()}});
}

}  // namespace npystream
