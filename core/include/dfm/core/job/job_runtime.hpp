// The parallel job as the trainer sees it: where this rank sits, the four
// parallel roles (always present: an identity object where no strategy fills
// one), and the few reductions the core itself needs (the reported loss, the
// metrics). A single-process job is JobRuntime::single_process().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dfm/core/parallel/param_placement.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/parallel/sequence_split.hpp"
#include "dfm/core/parallel/tensor_split.hpp"

namespace dfm {

class ComputeBackend;

// The roles a strategy can fill (docs/architecture.md). None is ever null:
// with_identities() fills every empty one with the object that does what one
// process would (every unit local, whole sequences, one tensor slice, one
// pipeline stage), so no model or trainer code asks whether a strategy exists.
struct ParallelRoles {
  std::shared_ptr<ParamPlacement> placement;  // where parameters live and when they move (dp)
  std::shared_ptr<SequenceSplit> sequence;    // which tokens this rank holds; attention (cp)
  std::shared_ptr<const TensorSplit> tensor;  // which slice of each tensor; region edges (tp)
  std::shared_ptr<const Pipeline> pipeline;   // which blocks; the schedule and its transfers (pp)

  // These roles, each empty one filled with its identity for a model of n_layer blocks.
  ParallelRoles with_identities(ComputeBackend& backend, int64_t n_layer) const;
};

struct JobRuntime {
  int64_t rank = 0, world = 1;
  int64_t dp_rank = 0, dp_size = 1, cp_rank = 0, cp_size = 1;
  ParallelRoles roles;
  ParamPlacement& placement() const { return *roles.placement; }
  SequenceSplit& sequence() const { return *roles.sequence; }
  const TensorSplit& tensor() const { return *roles.tensor; }
  const Pipeline& pipeline() const { return *roles.pipeline; }

  // Sums `count` doubles, in place, over the ranks that hold the same weights
  // but other tokens (data x context parallel): the loss of a step. Tensor
  // slices are not summed: each holds the whole loss.
  std::function<void(double* values, size_t count)> sum_over_data_ranks = [](double*, size_t) {};
  // Every rank's `mine` (the same count of floats on each), as
  // all[rank * count + i], on every rank: the per-rank metrics rank 0 writes.
  // Collective over the whole mesh; exact (each value is summed with zeros).
  std::function<std::vector<float>(const std::vector<float>& mine)> gather_from_ranks =
      [](const std::vector<float>& mine) { return mine; };
  // Bytes this rank has sent so far, per mesh axis ("dp", "tp", ...).
  std::function<std::map<std::string, uint64_t>()> bytes_sent = [] { return std::map<std::string, uint64_t>{}; };
  // Peak device bytes strategies held through the host services since the last reset.
  std::function<int64_t()> strategy_memory_peak = [] { return int64_t{0}; };
  std::function<std::map<std::string, int64_t>()> strategy_memory_peaks = [] {
    return std::map<std::string, int64_t>{};
  };
  std::function<void()> reset_strategy_memory_peak = [] {};
  // Step metrics strategies reported (name -> value), cleared by the call.
  std::function<std::map<std::string, double>()> take_strategy_metrics = [] { return std::map<std::string, double>{}; };

  // Every rank's `mine`, indexed by rank: an all-gather of small strings over
  // the whole world through the rendezvous store, which also waits for every
  // rank (a barrier). `tag` names one exchange and is never reused in a job.
  // Checkpoints use it to agree on a folder and to collect each rank's files.
  std::function<std::vector<std::string>(const std::string& tag, const std::string& mine)> exchange =
      [](const std::string&, const std::string& mine) { return std::vector<std::string>{mine}; };

  bool is_rank0() const { return rank == 0; }

  // One rank running a model of n_layer blocks: every role its identity.
  static JobRuntime single_process(ComputeBackend& backend, int64_t n_layer);
};

}  // namespace dfm
