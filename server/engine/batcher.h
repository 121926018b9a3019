// Batcher: Triton-style dynamic batching for one model. Concurrent requests
// whose inputs agree in names, dtypes, devices and every dimension but the
// first (and that ask for the same captures) are concatenated along
// dimension 0, run as one forward pass, and each caller gets exactly its own
// rows of every output and activation (views; no copy).
#ifndef NPYSTREAM_SERVER_ENGINE_BATCHER_H_
#define NPYSTREAM_SERVER_ENGINE_BATCHER_H_

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine_metrics.h"
#include "server/engine/model.h"
#include "server/engine/model_config.h"

namespace npystream {

// Thread-safe. No thread of its own: the first waiting caller leads the next
// batch (waits for a free instance, then for the batch to fill or for the
// oldest request's delay), runs it, and hands each member its rows; the
// others sleep until theirs is done.
class Batcher {
 public:
  using RunFn = std::function<absl::StatusOr<ModelRun>(const NamedTensors& inputs,
                                                       const std::vector<std::string>& capture)>;
  struct Options {
    DynamicBatching config;
    // Batches in flight at once (the model's instances). A batch forms only
    // when one may run, so requests arriving meanwhile join the next one.
    int instances = 1;
    std::string model;                 // for metrics
    EngineMetrics* metrics = nullptr;  // not owned; may be null
  };
  using Control = RunControl;

  Batcher(Options options, RunFn run);

  // Runs `inputs` (rows along dimension 0) in a batch, or alone when they
  // cannot batch (0-d, unequal first dimensions, more rows than max_batch).
  // CANCELLED / DEADLINE_EXCEEDED when given up while queued; errors of the
  // forward pass go to every member of the batch; FAILED_PRECONDITION when an
  // output or activation is not batched along dimension 0.
  absl::StatusOr<ModelRun> Run(const NamedTensors& inputs, const std::vector<std::string>& capture,
                               const Control& control);

 private:
  struct Request;
  // Leads one batch: waits, forms it, runs it with mu_ released. Returns
  // early, handing the lead on, when `self` (the leader's own request) was
  // given up or the queue emptied.
  void LeadLocked(Request* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No leader now; wakes the caller of the oldest queued request other than
  // `busy` (the one about to run a batch) to lead next.
  void HandOnLeadLocked(const Request* busy = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Completes queued requests whose callers gave up.
  void DropAbandonedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queued requests compatible with the head, FIFO, up to max_batch rows.
  std::vector<Request*> CandidatesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rows of the candidates: the batch that would form now.
  int64_t ReadyRowsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the candidates from the queue, cut at the largest preferred size
  // that falls on a request boundary, and returns them.
  std::vector<Request*> TakeBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The results of one batch, in member order.
  std::vector<absl::StatusOr<ModelRun>> RunBatch(const std::vector<Request*>& batch);

  const Options options_;
  const RunFn run_;
  absl::Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  Request* leader_ ABSL_GUARDED_BY(mu_) = nullptr;  // the caller leading the next batch
  int running_ ABSL_GUARDED_BY(mu_) = 0;            // batches in flight
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_BATCHER_H_
