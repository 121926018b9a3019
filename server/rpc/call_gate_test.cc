// CallGate under concurrency (also run under ThreadSanitizer by
// `make test-tsan`): admission and tickets from many threads while others
// read the count, drain, and the token check. Contexts are default-made
// (no call behind them), so nothing here cancels one.
#include "server/rpc/call_gate.h"

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace npystream::rpc {
namespace {

TEST(CallGateTest, TicketsFromManyThreadsAreCountedAndAllLeave) {
  CallGate::Options options;
  options.idle_timeout = absl::Hours(1);
  CallGate gate(options);
  constexpr int kThreads = 8, kCalls = 500;
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop) {
      EXPECT_GE(gate.in_flight(), 0);
      EXPECT_LE(gate.in_flight(), kThreads * 2);
      EXPECT_EQ(gate.CancelIdle(), 0);
    }
  });
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&gate, t] {
      grpc::CallbackServerContext context;
      for (int i = 0; i < kCalls; ++i) {
        auto a = gate.Admit(&context, "Fetch", /*idle_checked=*/true);
        auto b = gate.Admit(&context, "Put");
        ASSERT_TRUE(a.ok() && b.ok());
        (*a)->set_handle("t" + std::to_string(t));
        (*a)->AddSent(10);
        (*b)->AddReceived(20);
        (*a)->Touch();
        (*a)->Done(0);
        if (i % 2 == 0) (*b)->Done(0);  // the other half: abandoned
      }
    });
  }
  for (std::thread& c : callers) c.join();
  stop = true;
  watcher.join();
  EXPECT_EQ(gate.in_flight(), 0);
  EXPECT_EQ(gate.admitted(), 2 * kThreads * kCalls);
  EXPECT_TRUE(gate.WaitIdle(absl::ZeroDuration()));
}

TEST(CallGateTest, DrainRefusesNewCallsAndWaitIdleSeesTheLastOneLeave) {
  CallGate gate(CallGate::Options{});
  grpc::CallbackServerContext context;
  auto live = gate.Admit(&context, "Subscribe");
  ASSERT_TRUE(live.ok());
  gate.StartDrain();
  EXPECT_TRUE(gate.draining());
  auto refused = gate.Admit(&context, "Fetch");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(gate.WaitIdle(absl::Milliseconds(20)));
  absl::Notification waiting;
  std::thread leaver([&] {
    waiting.WaitForNotification();
    live->reset();  // the last call ends on another thread
  });
  waiting.Notify();
  EXPECT_TRUE(gate.WaitIdle(absl::Seconds(30)));
  leaver.join();
  EXPECT_EQ(gate.in_flight(), 0);
}

TEST(CallGateTest, ATokenIsRequiredWhenConfigured) {
  CallGate::Options options;
  options.token = "s3cret";
  CallGate gate(options);
  grpc::CallbackServerContext context;  // no authorization metadata
  auto refused = gate.Admit(&context, "Fetch");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(refused.status().message(), "missing authorization: Bearer token");
  EXPECT_EQ(gate.admitted(), 0);
}

}  // namespace
}  // namespace npystream::rpc
