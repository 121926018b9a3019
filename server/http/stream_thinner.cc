#include "server/http/stream_thinner.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace npystream {

namespace {
constexpr double kDefaultMaxHz = 10;
}  // namespace

absl::StatusOr<ThinPolicy> ParseThinPolicy(const std::map<std::string, std::string>& query) {
  ThinPolicy policy;
  const auto every = query.find("every");
  const auto max_hz = query.find("max_hz");
  if (every != query.end()) {
    if (!absl::SimpleAtoi(every->second, &policy.every) || policy.every < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("every=", every->second, ": use a whole number >= 1"));
    }
  }
  if (max_hz != query.end()) {
    if (!absl::SimpleAtod(max_hz->second, &policy.max_hz) || !std::isfinite(policy.max_hz) ||
        policy.max_hz < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_hz=", max_hz->second, ": use a number >= 0 (0: no limit)"));
    }
  } else if (every == query.end()) {
    policy.max_hz = kDefaultMaxHz;
  }
  return policy;
}

StreamThinner::Verdict StreamThinner::Offer(const std::string& layer, uint64_t seq,
                                            absl::Time now) const {
  const auto it = last_.find(layer);
  if (it == last_.end()) return Verdict::kSend;
  if (policy_.every > 1 && seq < it->second.seq + policy_.every) return Verdict::kSkip;
  return now >= Due(layer) ? Verdict::kSend : Verdict::kHold;
}

void StreamThinner::Sent(const std::string& layer, uint64_t seq, absl::Time now) {
  last_[layer] = Last{seq, now};
}

absl::Time StreamThinner::Due(const std::string& layer) const {
  const auto it = last_.find(layer);
  if (it == last_.end() || policy_.max_hz <= 0) return absl::InfinitePast();
  return it->second.at + absl::Seconds(1.0 / policy_.max_hz);
}

}  // namespace npystream
