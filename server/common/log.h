// One line per event. Text: "2026-11-23T12:00:00.123Z INFO event key=value
// key="quoted value"". JSON (--log-format json): one object per line,
// {"ts":...,"level":...,"event":...,"key":value,...}, numbers and booleans
// unquoted. Fields are typed values, so no value can break either format.
#ifndef NPYSTREAM_SERVER_COMMON_LOG_H_
#define NPYSTREAM_SERVER_COMMON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace npystream {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide settings; set once at start-up, before other threads log.
void SetLogLevel(LogLevel level);
void SetLogJson(bool json);
// Parses "debug", "info", "warning", "error"; false when unknown.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
// Both settings from flag values: `level` as ParseLogLevel (unknown: info),
// `format` "json" or anything else for text.
void ConfigureLogging(absl::string_view level, absl::string_view format);

// A field's value: text, a whole number, a real number or a boolean. Text
// passed as a temporary std::string is owned; other text is viewed, so a
// LogValue lives only as long as the Log call it is written for.
class LogValue {
 public:
  LogValue(absl::string_view s) : v_(s) {}                      // NOLINT: implicit by design
  LogValue(const char* s) : v_(absl::string_view(s)) {}         // NOLINT
  LogValue(const std::string& s) : v_(absl::string_view(s)) {}  // NOLINT
  LogValue(std::string&& s) : v_(std::move(s)) {}               // NOLINT
  // A const temporary (`cond ? "-" : some_string`) is copied.
  LogValue(const std::string&& s) : v_(std::string(s)) {}  // NOLINT
  LogValue(bool b) : v_(b) {}                              // NOLINT
  LogValue(double d) : v_(d) {}                            // NOLINT
  LogValue(float f) : v_(static_cast<double>(f)) {}        // NOLINT
  template <typename T,
            typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
  LogValue(T n) {  // NOLINT
    if constexpr (std::is_signed_v<T>) {
      v_ = static_cast<int64_t>(n);
    } else {
      v_ = static_cast<uint64_t>(n);
    }
  }

  // Appends the value as text output writes it: bare when it is a number, a
  // boolean or a word without spaces, quotes or '=', else quoted and escaped.
  void AppendText(std::string* out) const;
  // Appends the value as a JSON value.
  void AppendJson(std::string* out) const;

 private:
  std::variant<absl::string_view, std::string, int64_t, uint64_t, double, bool> v_;
};

struct LogField {
  absl::string_view key;
  LogValue value;
};
using LogFields = absl::Span<const LogField>;

// Writes one line to stderr when `level` is enabled. Thread-safe: each line
// is written with a single write(2), so concurrent lines never interleave.
void Log(LogLevel level, absl::string_view event, LogFields fields = {});
inline void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields) {
  Log(level, event, LogFields(fields.begin(), fields.size()));
}

// The line Log would write, without the timestamp's variability: for tests.
std::string FormatLogLine(absl::string_view ts, LogLevel level, absl::string_view event,
                          LogFields fields, bool json);

// Logs `event` at ERROR with error=<status message> and code=<status code>.
void LogError(absl::string_view event, const absl::Status& status);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_LOG_H_
