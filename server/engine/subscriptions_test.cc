#include "server/engine/subscriptions.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/full.h>

#include "gtest/gtest.h"

namespace npystream {
namespace {

std::shared_ptr<const StoredTensor> Value(TensorStore* store, float v) {
  return *store->Insert(at::full({4}, v), npy::DType::kFloat32,
                        TensorStore::InsertOptions{"", "conv1", 0, true});
}

TEST(SubscriptionsTest, SlowSubscriberGetsOnlyTheNewestValue) {
  auto store = *TensorStore::Create({});
  int drops = 0;
  SubscriptionHub hub([&](const std::string& m, const std::string& l) {
    EXPECT_EQ(m, "demo");
    EXPECT_EQ(l, "conv1");
    ++drops;
  });
  auto sub = hub.Subscribe("demo", {"conv1"});
  EXPECT_EQ(hub.LayersWanted("demo"), std::set<std::string>{"conv1"});
  EXPECT_TRUE(hub.LayersWanted("other").empty());
  for (int i = 0; i < 100; ++i) hub.Publish("demo", "conv1", Value(store.get(), i), 1.5);
  EXPECT_EQ(drops, 99);
  EXPECT_EQ(hub.dropped("demo", "conv1"), 99u);
  // Dropped values were freed: only the pending one is alive.
  EXPECT_EQ(store->resident_count(), 1);
  LiveValue v = sub->TakeOrNotify(nullptr);
  ASSERT_NE(v.tensor, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(v.tensor->host_data())[0], 99.0f);
  EXPECT_EQ(v.tensor->info().name, "conv1");
  EXPECT_EQ(v.layer, "conv1");
  EXPECT_EQ(v.seq, 100u);  // the 100th value published: the gap tells the drops
  EXPECT_EQ(v.infer_ms, 1.5);
  EXPECT_EQ(sub->TakeOrNotify(nullptr).tensor, nullptr);
  EXPECT_EQ(store->size(), 0u);  // ephemeral: no handles
}

// Two Infer threads can number their values 1 and 2 and offer them in the
// opposite order: the subscriber must keep 2, not be left with 1.
TEST(SubscriptionsTest, AnOlderValueOfferedLateNeverReplacesANewerOne) {
  auto store = *TensorStore::Create({});
  Subscription sub("demo", {"conv1"});
  EXPECT_FALSE(sub.Offer({"conv1", 2, 0, Value(store.get(), 2)}));
  EXPECT_TRUE(sub.Offer({"conv1", 1, 0, Value(store.get(), 1)}));  // late: dropped
  LiveValue v = sub.TakeOrNotify(nullptr);
  EXPECT_EQ(v.seq, 2u);
  EXPECT_EQ(reinterpret_cast<const float*>(v.tensor->host_data())[0], 2.0f);
  // Also once the newer one was taken.
  EXPECT_TRUE(sub.Offer({"conv1", 1, 0, Value(store.get(), 1)}));
  EXPECT_EQ(sub.TakeOrNotify(nullptr).tensor, nullptr);
  EXPECT_FALSE(sub.Offer({"conv1", 3, 0, Value(store.get(), 3)}));
  EXPECT_EQ(sub.TakeOrNotify(nullptr).seq, 3u);
  v = {};
  EXPECT_EQ(store->resident_count(), 0);  // the discarded values were freed
}

TEST(SubscriptionsTest, WakeFiresOnceOnOfferAndOnClose) {
  auto store = *TensorStore::Create({});
  SubscriptionHub hub;
  auto sub = hub.Subscribe("m", {"a", "b"});
  int wakes = 0;
  EXPECT_EQ(sub->TakeOrNotify([&] { ++wakes; }).tensor, nullptr);
  hub.Publish("m", "b", Value(store.get(), 1));
  hub.Publish("m", "a", Value(store.get(), 2));
  EXPECT_EQ(wakes, 1);
  // Oldest first.
  LiveValue first = sub->TakeOrNotify(nullptr), second = sub->TakeOrNotify(nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(first.tensor->host_data())[0], 1.0f);
  EXPECT_EQ(first.layer, "b");
  EXPECT_EQ(reinterpret_cast<const float*>(second.tensor->host_data())[0], 2.0f);
  EXPECT_EQ(second.layer, "a");
  EXPECT_EQ(second.seq, 1u);  // seq counts per layer
  EXPECT_EQ(sub->TakeOrNotify([&] { ++wakes; }).tensor, nullptr);
  hub.Unsubscribe(sub);
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(hub.subscriber_count(), 0u);
  hub.Publish("m", "a", Value(store.get(), 3));
  first = second = {};
  EXPECT_EQ(store->resident_count(), 0);
}

}  // namespace
}  // namespace npystream
