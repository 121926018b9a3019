// RETURN_IF_ERROR / ASSIGN_OR_RETURN: the one pair of error-propagation macros.
#ifndef NPYSTREAM_SERVER_COMMON_STATUS_MACROS_H_
#define NPYSTREAM_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NPYSTREAM_CONCAT_INNER_(a, b) a##b
#define NPYSTREAM_CONCAT_(a, b) NPYSTREAM_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the caller if not OK.
#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    ::absl::Status npystream_status_ = (expr);             \
    if (!npystream_status_.ok()) return npystream_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  NPYSTREAM_ASSIGN_OR_RETURN_IMPL_(NPYSTREAM_CONCAT_(npystream_statusor_, __LINE__), lhs, rexpr)

#define NPYSTREAM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = std::move(statusor).value()

#endif  // NPYSTREAM_SERVER_COMMON_STATUS_MACROS_H_
