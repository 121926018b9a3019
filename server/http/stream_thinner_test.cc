#include "server/http/stream_thinner.h"

#include "gtest/gtest.h"

namespace npystream {
namespace {

using Verdict = StreamThinner::Verdict;

TEST(ThinPolicyTest, DefaultIsTenPerSecond) {
  const ThinPolicy p = *ParseThinPolicy({});
  EXPECT_EQ(p.every, 1u);
  EXPECT_EQ(p.max_hz, 10);
  const ThinPolicy every = *ParseThinPolicy({{"every", "5"}});
  EXPECT_EQ(every.every, 5u);
  EXPECT_EQ(every.max_hz, 0);  // `every` alone lifts the default rate
  EXPECT_EQ(ParseThinPolicy({{"max_hz", "0"}})->max_hz, 0);
  EXPECT_EQ(ParseThinPolicy({{"max_hz", "2.5"}, {"every", "2"}})->max_hz, 2.5);
}

TEST(ThinPolicyTest, BadValuesNameTheParameter) {
  EXPECT_EQ(ParseThinPolicy({{"every", "0"}}).status().message(),
            "every=0: use a whole number >= 1");
  EXPECT_EQ(ParseThinPolicy({{"every", "x"}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseThinPolicy({{"max_hz", "-1"}}).status().message(),
            "max_hz=-1: use a number >= 0 (0: no limit)");
  EXPECT_FALSE(ParseThinPolicy({{"max_hz", "nan"}}).ok());
  EXPECT_FALSE(ParseThinPolicy({{"max_hz", "inf"}}).ok());
}

TEST(StreamThinnerTest, RateLimitHoldsUntilDuePerLayer) {
  StreamThinner t(ThinPolicy{1, 10});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(t.Offer("a", 1, t0), Verdict::kSend);
  t.Sent("a", 1, t0);
  EXPECT_EQ(t.Due("a"), t0 + absl::Milliseconds(100));
  EXPECT_EQ(t.Offer("a", 2, t0 + absl::Milliseconds(50)), Verdict::kHold);
  EXPECT_EQ(t.Offer("b", 1, t0 + absl::Milliseconds(50)), Verdict::kSend);  // own budget
  EXPECT_EQ(t.Offer("a", 3, t0 + absl::Milliseconds(100)), Verdict::kSend);
}

TEST(StreamThinnerTest, EveryCountsProducedValuesNotDeliveredOnes) {
  StreamThinner t(ThinPolicy{3, 0});
  const absl::Time now = absl::FromUnixSeconds(1);
  EXPECT_EQ(t.Offer("a", 1, now), Verdict::kSend);
  t.Sent("a", 1, now);
  EXPECT_EQ(t.Offer("a", 2, now), Verdict::kSkip);
  EXPECT_EQ(t.Offer("a", 3, now), Verdict::kSkip);
  EXPECT_EQ(t.Offer("a", 4, now), Verdict::kSend);
  t.Sent("a", 4, now);
  // Values 5 and 6 were dropped upstream (a slow reader): 7 is due.
  EXPECT_EQ(t.Offer("a", 7, now), Verdict::kSend);
  EXPECT_EQ(t.Due("a"), absl::InfinitePast());
}

}  // namespace
}  // namespace npystream
