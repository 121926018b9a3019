// StreamThinner: how many of a layer's live values a browser is sent. A
// model running at 1 kHz must not flood a tab, and a dashboard wants the
// newest value at a steady rate rather than the first of each burst.
#ifndef NPYSTREAM_SERVER_HTTP_STREAM_THINNER_H_
#define NPYSTREAM_SERVER_HTTP_STREAM_THINNER_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace npystream {

struct ThinPolicy {
  uint64_t every = 1;  // send one value in `every` a layer produces
  double max_hz = 0;   // at most this many values a second per layer; 0: no limit
};

// From the query parameters `every` (a whole number >= 1) and `max_hz` (a
// number >= 0; 0 lifts the limit). Neither given: at most 10 values a second.
// INVALID_ARGUMENT naming the parameter for any other value.
absl::StatusOr<ThinPolicy> ParseThinPolicy(const std::map<std::string, std::string>& query);

// Per-layer bookkeeping of what was sent. Not thread-safe (one per stream).
class StreamThinner {
 public:
  explicit StreamThinner(const ThinPolicy& policy) : policy_(policy) {}

  enum class Verdict {
    kSend,  // send it now
    kHold,  // too soon: keep it (a newer value replaces it) until Due(layer)
    kSkip,  // thinned out by `every`
  };
  Verdict Offer(const std::string& layer, uint64_t seq, absl::Time now) const;
  // Records that value `seq` of `layer` was sent at `now`.
  void Sent(const std::string& layer, uint64_t seq, absl::Time now);
  // When `layer` may send next (InfinitePast when it may at once).
  absl::Time Due(const std::string& layer) const;

 private:
  struct Last {
    uint64_t seq = 0;
    absl::Time at = absl::InfinitePast();
  };
  const ThinPolicy policy_;
  std::map<std::string, Last> last_;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_STREAM_THINNER_H_
