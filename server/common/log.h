// One line per event: "2026-11-23T12:00:00.123Z INFO event key=value ...".
#ifndef NPYSTREAM_SERVER_COMMON_LOG_H_
#define NPYSTREAM_SERVER_COMMON_LOG_H_

#include <string>

#include "absl/strings/string_view.h"

namespace npystream {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide settings; set once at start-up, before other threads log.
void SetLogLevel(LogLevel level);
void SetLogJson(bool json);
// Parses "debug", "info", "warning", "error"; false when unknown.
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// Writes one line to stderr when `level` is enabled. `fields` is
// "key=value key=value" text (JSON output splits it on spaces and '=').
// Thread-safe: each line is written with a single write(2).
void Log(LogLevel level, absl::string_view event, absl::string_view fields = "");

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_LOG_H_
