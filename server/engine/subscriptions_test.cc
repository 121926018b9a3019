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
  for (int i = 0; i < 100; ++i) hub.Publish("demo", "conv1", Value(store.get(), i));
  EXPECT_EQ(drops, 99);
  EXPECT_EQ(hub.dropped("demo", "conv1"), 99u);
  // Dropped values were freed: only the pending one is alive.
  EXPECT_EQ(store->resident_count(), 1);
  auto v = sub->TakeOrNotify(nullptr);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(v->host_data())[0], 99.0f);
  EXPECT_EQ(v->info().name, "conv1");
  EXPECT_EQ(sub->TakeOrNotify(nullptr), nullptr);
  EXPECT_EQ(store->size(), 0u);  // ephemeral: no handles
}

TEST(SubscriptionsTest, WakeFiresOnceOnOfferAndOnClose) {
  auto store = *TensorStore::Create({});
  SubscriptionHub hub;
  auto sub = hub.Subscribe("m", {"a", "b"});
  int wakes = 0;
  EXPECT_EQ(sub->TakeOrNotify([&] { ++wakes; }), nullptr);
  hub.Publish("m", "b", Value(store.get(), 1));
  hub.Publish("m", "a", Value(store.get(), 2));
  EXPECT_EQ(wakes, 1);
  // Oldest first.
  EXPECT_EQ(reinterpret_cast<const float*>(sub->TakeOrNotify(nullptr)->host_data())[0], 1.0f);
  EXPECT_EQ(reinterpret_cast<const float*>(sub->TakeOrNotify(nullptr)->host_data())[0], 2.0f);
  EXPECT_EQ(sub->TakeOrNotify([&] { ++wakes; }), nullptr);
  hub.Unsubscribe(sub);
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(hub.subscriber_count(), 0u);
  hub.Publish("m", "a", Value(store.get(), 3));
  EXPECT_EQ(store->resident_count(), 0);
}

}  // namespace
}  // namespace npystream
