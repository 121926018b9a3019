#include "server/engine/batcher.h"

#include <ATen/ops/add.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/sum.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace npystream {
namespace {

// A row-wise "model": y = 2x + 1, and the activation "a" = row sums.
class FakeModel {
 public:
  absl::StatusOr<ModelRun> Run(const NamedTensors& inputs, const std::vector<std::string>&) {
    {
      absl::MutexLock lock(&mu_);
      batches_.push_back(inputs[0].second.size(0));
    }
    if (gate_ != nullptr) gate_->WaitForNotification();
    if (fail_) return absl::ResourceExhaustedError("out of memory in the fake");
    ModelRun run;
    const at::Tensor& x = inputs[0].second;
    run.outputs.emplace_back("y", at::add(at::mul(x, 2.0), 1.0));
    run.activations.emplace_back("a", x.sum(1, /*keepdim=*/true));
    if (scalar_output_) run.outputs.emplace_back("loss", x.sum());
    return run;
  }
  std::vector<int64_t> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

  absl::Notification* gate_ = nullptr;  // blocks every run until notified
  bool fail_ = false;
  bool scalar_output_ = false;

 private:
  absl::Mutex mu_;
  std::vector<int64_t> batches_;
};

std::unique_ptr<Batcher> MakeBatcher(FakeModel* model, uint32_t max_batch, uint32_t delay_us,
                                     std::vector<uint32_t> preferred = {}) {
  Batcher::Options options;
  options.config.max_batch = max_batch;
  options.config.max_queue_delay_us = delay_us;
  options.config.preferred_batch_sizes = std::move(preferred);
  options.model = "fake";
  return std::make_unique<Batcher>(
      options, [model](const NamedTensors& in, const std::vector<std::string>& capture) {
        return model->Run(in, capture);
      });
}

NamedTensors Rows(int64_t rows, float value, int64_t width = 3) {
  return {{"x", at::full({rows, width}, value)}};
}

// Every caller gets exactly its own rows, for 1..200 concurrent callers.
TEST(BatcherTest, ConcurrentCallersGetExactlyTheirOwnRows) {
  for (int callers : {1, 7, 64, 200}) {
    FakeModel model;
    auto batcher = MakeBatcher(&model, 64, 20000);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&, i] {
        const int64_t rows = 1 + i % 3;
        auto run = batcher->Run(Rows(rows, static_cast<float>(i)), {}, RunControl());
        if (!run.ok() || run->outputs.size() != 1 || run->activations.size() != 1) {
          ++wrong;
          return;
        }
        const at::Tensor& y = run->outputs[0].second;
        const at::Tensor& a = run->activations[0].second;
        if (y.size(0) != rows || !y.equal(at::full({rows, 3}, 2.0f * i + 1)) ||
            !a.equal(at::full({rows, 1}, 3.0f * i))) {
          ++wrong;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0) << callers << " callers";
    int64_t total = 0, largest = 0;
    for (int64_t b : model.batches()) {
      EXPECT_LE(b, 64);
      total += b;
      largest = std::max(largest, b);
    }
    int64_t expected = 0;
    for (int i = 0; i < callers; ++i) expected += 1 + i % 3;
    EXPECT_EQ(total, expected);
    if (callers >= 64) {
      EXPECT_GT(largest, 8) << "concurrent requests were not merged";
    }
  }
}

TEST(BatcherTest, ARequestLargerThanMaxBatchRunsAlone) {
  FakeModel model;
  auto batcher = MakeBatcher(&model, 8, 1000);
  auto run = batcher->Run(Rows(20, 1.0f), {}, RunControl());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->outputs[0].second.size(0), 20);
  EXPECT_EQ(model.batches(), (std::vector<int64_t>{20}));
}

TEST(BatcherTest, ShapesThatCannotMergeRunInSeparateBatches) {
  FakeModel model;
  auto batcher = MakeBatcher(&model, 64, 20000);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      const int64_t width = 3 + i % 2;
      auto run = batcher->Run(Rows(1, static_cast<float>(i), width), {}, RunControl());
      if (!run.ok() || !run->outputs[0].second.equal(at::full({1, width}, 2.0f * i + 1))) ++wrong;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  int64_t total = 0;
  for (int64_t b : model.batches()) total += b;
  EXPECT_EQ(total, 20);
  EXPECT_GE(model.batches().size(), 2u);
}

TEST(BatcherTest, PreferredSizesCutTheBatch) {
  FakeModel model;
  absl::Notification first_running, release;
  auto batcher = MakeBatcher(&model, 64, 200000, {8});
  // The first request runs alone and holds the model while ten queue up.
  model.gate_ = &release;
  std::thread first([&] {
    first_running.Notify();
    EXPECT_TRUE(batcher->Run(Rows(1, 0.0f), {}, RunControl()).ok());
  });
  first_running.WaitForNotification();
  for (int i = 0; i < 200 && model.batches().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  std::vector<std::thread> rest;
  for (int i = 1; i <= 10; ++i) {
    rest.emplace_back([&, i] {
      EXPECT_TRUE(batcher->Run(Rows(1, static_cast<float>(i)), {}, RunControl()).ok());
    });
  }
  absl::SleepFor(absl::Milliseconds(50));  // all ten queued behind the first
  release.Notify();
  first.join();
  for (auto& t : rest) t.join();
  EXPECT_EQ(model.batches(), (std::vector<int64_t>{1, 8, 2}));
}

TEST(BatcherTest, CancelledAndExpiredRequestsLeaveTheQueue) {
  FakeModel model;
  absl::Notification release;
  model.gate_ = &release;
  auto batcher = MakeBatcher(&model, 64, 1000);
  std::thread holder([&] { EXPECT_TRUE(batcher->Run(Rows(1, 0.0f), {}, RunControl()).ok()); });
  for (int i = 0; i < 200 && model.batches().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));

  std::atomic<bool> cancel{false};
  RunControl cancellable;
  cancellable.cancelled = [&cancel] { return cancel.load(); };
  absl::StatusOr<ModelRun> cancelled_result;
  std::thread cancelled([&] { cancelled_result = batcher->Run(Rows(1, 5.0f), {}, cancellable); });
  RunControl short_deadline;
  short_deadline.deadline = absl::Now() + absl::Milliseconds(100);
  auto expired = batcher->Run(Rows(1, 6.0f), {}, short_deadline);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded);
  cancel = true;
  cancelled.join();
  EXPECT_EQ(cancelled_result.status().code(), absl::StatusCode::kCancelled);
  release.Notify();
  holder.join();
  // Neither gave-up request ever reached the model.
  EXPECT_EQ(model.batches(), (std::vector<int64_t>{1}));
}

TEST(BatcherTest, ErrorsReachEveryMemberAndUnbatchedOutputsAreRefused) {
  FakeModel model;
  model.fail_ = true;
  auto batcher = MakeBatcher(&model, 64, 20000);
  std::vector<absl::StatusOr<ModelRun>> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = batcher->Run(Rows(1, 1.0f), {}, RunControl()); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);

  FakeModel scalar;
  scalar.scalar_output_ = true;
  auto scalar_batcher = MakeBatcher(&scalar, 64, 20000);
  threads.clear();
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = scalar_batcher->Run(Rows(1, 1.0f), {}, RunControl()); });
  }
  for (auto& t : threads) t.join();
  if (scalar.batches().size() < 4) {  // at least one real batch of several
    bool refused = false;
    for (const auto& r : results) {
      refused |= r.status().code() == absl::StatusCode::kFailedPrecondition &&
                 r.status().message().find("'loss'") != absl::string_view::npos;
    }
    EXPECT_TRUE(refused);
  }
}

}  // namespace
}  // namespace npystream
