// The parallel job as the trainer sees it: where this rank sits, who places
// the parameters, and the few reductions the core itself needs (the reported
// loss, the metrics). A single-process job is JobRuntime::single_process().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dfm/core/parallel/param_placement.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/parallel/tensor_split.hpp"

namespace dfm {

struct JobRuntime {
  int64_t rank = 0, world = 1;
  int64_t dp_rank = 0, dp_size = 1, cp_size = 1;
  ParamPlacement* placement = nullptr;
  // The strategy that splits every sequence across the cp ranks, or null
  // (each rank then holds whole sequences).
  SequenceSplit* sequence = nullptr;
  // The strategy that splits tensors across the tp ranks, or null (every
  // rank then holds whole tensors).
  const TensorSplit* tensor = nullptr;
  // The strategy that cuts the model into pipeline stages, or null (one
  // stage holds the whole model).
  const Pipeline* pipeline = nullptr;
  // Sums `count` doubles, in place, over the ranks that hold the same weights
  // but other tokens (data x context parallel): the loss of a step. Tensor
  // slices are not summed: each holds the whole loss.
  std::function<void(double* values, size_t count)> sum_over_data_ranks = [](double*, size_t) {};
  // Bytes this rank has sent so far, per mesh axis ("dp", "tp", ...).
  std::function<std::map<std::string, uint64_t>()> bytes_sent = [] { return std::map<std::string, uint64_t>{}; };
  // Peak device bytes strategies held through the host services since the last reset.
  std::function<int64_t()> strategy_memory_peak = [] { return int64_t{0}; };
  std::function<std::map<std::string, int64_t>()> strategy_memory_peaks = [] { return std::map<std::string, int64_t>{}; };
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

  // One rank, every parameter local (owns its LocalPlacement).
  static JobRuntime single_process();
  std::shared_ptr<ParamPlacement> owned_placement;
};

}  // namespace dfm
