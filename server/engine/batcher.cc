#include "server/engine/batcher.h"

#include <ATen/ops/cat.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace npystream {
namespace {

// Rows along dimension 0 shared by every input; -1 when they cannot batch.
int64_t RowsOf(const NamedTensors& inputs) {
  int64_t rows = -1;
  for (const auto& [name, t] : inputs) {
    if (!t.defined() || t.dim() == 0) return -1;
    if (rows >= 0 && t.size(0) != rows) return -1;
    rows = t.size(0);
  }
  return rows > 0 ? rows : -1;
}

// Requests with equal keys can share a forward pass.
std::string CompatibilityKey(const NamedTensors& inputs, const std::vector<std::string>& capture) {
  std::string key;
  for (const auto& [name, t] : inputs) {
    absl::StrAppend(&key, name, ":", static_cast<int>(t.scalar_type()), ":", t.device().str());
    for (int64_t d = 1; d < t.dim(); ++d) absl::StrAppend(&key, ",", t.size(d));
    key += ";";
  }
  absl::StrAppend(&key, "|", absl::StrJoin(capture, ","));
  return key;
}

// Row range [offset, offset + rows) of every tensor in `from`.
absl::Status Slice(const NamedTensors& from, int64_t total, int64_t offset, int64_t rows,
                   NamedTensors* to) {
  for (const auto& [name, t] : from) {
    if (t.dim() == 0 || t.size(0) != total) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", name, "' has ", t.dim() == 0 ? 0 : t.size(0), " rows for a batch of ", total,
          ": this model is not row-wise along dimension 0; remove its dynamic_batching"));
    }
    to->emplace_back(name, t.narrow(0, offset, rows));
  }
  return absl::OkStatus();
}

}  // namespace

struct Batcher::Request {
  const NamedTensors* inputs = nullptr;
  const std::vector<std::string>* capture = nullptr;
  const Control* control = nullptr;
  std::string key;
  int64_t rows = 0;
  absl::Time enqueued;
  bool done = false;
  absl::StatusOr<ModelRun> result;
  // Its caller sleeps here: woken alone (never a herd of every waiter) when
  // the request is done, when it may lead, or, leading, when the batch may
  // have to form.
  absl::CondVar wake;
};

Batcher::Batcher(Options options, RunFn run) : options_(std::move(options)), run_(std::move(run)) {}

absl::StatusOr<ModelRun> Batcher::Run(const NamedTensors& inputs,
                                      const std::vector<std::string>& capture,
                                      const Control& control) {
  const int64_t rows = RowsOf(inputs);
  if (rows < 0 || rows > static_cast<int64_t>(options_.config.max_batch)) {
    return run_(inputs, capture);  // runs alone
  }
  Request req;
  req.inputs = &inputs;
  req.capture = &capture;
  req.control = &control;
  req.key = CompatibilityKey(inputs, capture);
  req.rows = rows;
  req.enqueued = absl::Now();
  absl::MutexLock lock(&mu_);
  queue_.push_back(&req);
  if (options_.metrics) options_.metrics->QueueDepth(options_.model, queue_.size());
  if (leader_ != nullptr) leader_->wake.Signal();  // the batch may be full now
  while (!req.done) {
    // Lead when nobody does and requests wait (this one may already be in a
    // running batch: then the queue may be empty, and there is nothing to lead).
    if (leader_ == nullptr && !queue_.empty()) {
      LeadLocked(&req);
      continue;
    }
    // A follower: wakes when its batch is done or it is handed the lead,
    // and at least every 20 ms to see whether its caller gave up.
    req.wake.WaitWithTimeout(&mu_, absl::Milliseconds(20));
    if (!req.done) DropAbandonedLocked();
  }
  return std::move(req.result);
}

void Batcher::HandOnLeadLocked(const Request* busy) {
  leader_ = nullptr;
  for (Request* r : queue_) {
    if (r != busy) {
      r->wake.Signal();
      return;
    }
  }
}

void Batcher::DropAbandonedLocked() {
  const absl::Time now = absl::Now();
  for (auto it = queue_.begin(); it != queue_.end();) {
    Request* r = *it;
    absl::Status why;
    if (r->control->cancelled && r->control->cancelled()) {
      why = absl::CancelledError("the call was cancelled while queued for a batch");
    } else if (now >= r->control->deadline) {
      why = absl::DeadlineExceededError("the deadline passed while queued for a batch");
    }
    if (why.ok()) {
      ++it;
      continue;
    }
    r->result = why;
    r->done = true;
    it = queue_.erase(it);
    r->wake.Signal();
  }
}

std::vector<Batcher::Request*> Batcher::CandidatesLocked() {
  std::vector<Request*> batch;
  if (queue_.empty()) return batch;
  const std::string& key = queue_.front()->key;
  int64_t rows = 0;
  for (Request* r : queue_) {
    if (r->key != key) continue;
    if (rows + r->rows > static_cast<int64_t>(options_.config.max_batch)) break;
    rows += r->rows;
    batch.push_back(r);
  }
  return batch;
}

int64_t Batcher::ReadyRowsLocked() {
  int64_t rows = 0;
  for (const Request* r : CandidatesLocked()) rows += r->rows;
  return rows;
}

std::vector<Batcher::Request*> Batcher::TakeBatchLocked() {
  std::vector<Request*> batch = CandidatesLocked();
  std::vector<int64_t> cumulative;  // rows after each member
  for (const Request* r : batch) {
    cumulative.push_back((cumulative.empty() ? 0 : cumulative.back()) + r->rows);
  }
  // The largest preferred size that falls on a member boundary, if any.
  const auto& preferred = options_.config.preferred_batch_sizes;
  for (auto p = preferred.rbegin(); p != preferred.rend(); ++p) {
    auto at = std::find(cumulative.begin(), cumulative.end(), static_cast<int64_t>(*p));
    if (at != cumulative.end()) {
      batch.resize(static_cast<size_t>(at - cumulative.begin()) + 1);
      break;
    }
  }
  for (Request* r : batch) queue_.erase(std::find(queue_.begin(), queue_.end(), r));
  return batch;
}

void Batcher::LeadLocked(Request* self) {
  leader_ = self;
  const absl::Duration delay = absl::Microseconds(options_.config.max_queue_delay_us);
  for (;;) {
    DropAbandonedLocked();
    // Nothing left to lead, or this caller gave up: hand the lead on.
    if (queue_.empty() || self->done) {
      HandOnLeadLocked();
      return;
    }
    if (running_ >= std::max(1, options_.instances)) {
      self->wake.WaitWithTimeout(&mu_, absl::Milliseconds(20));  // also to see who gave up
      continue;
    }
    const absl::Time due = queue_.front()->enqueued + delay;
    if (ReadyRowsLocked() >= static_cast<int64_t>(options_.config.max_batch) ||
        absl::Now() >= due) {
      break;
    }
    self->wake.WaitWithDeadline(&mu_, std::min(due, absl::Now() + absl::Milliseconds(20)));
  }
  std::vector<Request*> batch = TakeBatchLocked();
  const absl::Time now = absl::Now();
  if (options_.metrics) {
    for (const Request* r : batch) {
      options_.metrics->QueueWaited(options_.model, absl::ToDoubleSeconds(now - r->enqueued));
    }
    options_.metrics->QueueDepth(options_.model, queue_.size());
  }
  // Another caller leads the next batch while this one runs it.
  HandOnLeadLocked(self);
  ++running_;
  mu_.Unlock();
  std::vector<absl::StatusOr<ModelRun>> results = RunBatch(batch);
  mu_.Lock();
  --running_;
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->result = std::move(results[i]);
    batch[i]->done = true;
    batch[i]->wake.Signal();
  }
  if (leader_ != nullptr) leader_->wake.Signal();  // an instance is free
}

std::vector<absl::StatusOr<ModelRun>> Batcher::RunBatch(const std::vector<Request*>& batch) {
  int64_t total = 0;
  for (const Request* r : batch) total += r->rows;
  if (options_.metrics) options_.metrics->BatchRan(options_.model, total);
  if (batch.size() == 1) return {run_(*batch[0]->inputs, *batch[0]->capture)};
  absl::StatusOr<ModelRun> run;
  try {
    NamedTensors merged;
    const NamedTensors& first = *batch[0]->inputs;
    for (size_t i = 0; i < first.size(); ++i) {
      std::vector<at::Tensor> parts;
      parts.reserve(batch.size());
      for (const Request* r : batch) parts.push_back((*r->inputs)[i].second);
      merged.emplace_back(first[i].first, at::cat(parts, 0));
    }
    run = run_(merged, *batch[0]->capture);
  } catch (const std::exception& e) {
    run = absl::InternalError(absl::StrCat("merging a batch of ", batch.size(), ": ", e.what()));
  }
  std::vector<absl::StatusOr<ModelRun>> results;
  int64_t offset = 0;
  for (const Request* r : batch) {
    if (!run.ok()) {
      results.push_back(run.status());
      continue;
    }
    ModelRun mine;
    mine.compute_ms = run->compute_ms;
    absl::Status s = Slice(run->outputs, total, offset, r->rows, &mine.outputs);
    if (s.ok()) s = Slice(run->activations, total, offset, r->rows, &mine.activations);
    offset += r->rows;
    if (s.ok()) {
      results.push_back(std::move(mine));
    } else {
      results.push_back(s);
    }
  }
  return results;
}

}  // namespace npystream
