// After a step's last backward: the one place that finishes the gradients
// and measures them, in this order (torchtitan's parallelize functions keep
// the same order in one place, for the same reasons):
//
//  1. The placement finishes its units' gradients (fsdp2: the last
//     reduce-scatters over dp x cp, or DDP's all-reduce), so each shard holds
//     the sum over every data and context rank of its elements' gradients.
//  2. Sequence parallel leaves each tensor slice only its own tokens' part of
//     the replicated parameters' gradients (norms, position embeddings,
//     row-parallel biases): the tensor role sums them over the slices. It
//     comes after 1 because it works on the finished shards, once per step.
//  3. The root unit, held by the first and the last pipeline stage, gets the
//     sum of both stages' gradients when the embedding is tied to the head,
//     so the two copies stay identical (root_copies.hpp; untied: nothing
//     crosses the pipeline). After 1 and 2, which each stage runs on its own
//     copy.
//  4. The global gradient norm counts every element of the model once: the
//     placement sums its shards, the tensor slices their slices (a replicated
//     parameter counted by slice 0), the stages their units (a root
//     parameter, held twice, counted by the stage that keeps it).
#pragma once

#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/model_params.hpp"
#include "dfm/core/parallel/root_copies.hpp"
#include "dfm/core/train/optimizer.hpp"

namespace dfm {

class GradientFinisher {
 public:
  GradientFinisher(ComputeBackend& backend, ModelParams& params, const JobRuntime& runtime);
  // Steps 1-3, on every rank.
  void finish(const dfm_step_info& step);
  // Step 4: the squared global gradient norm, the same on every rank;
  // `own`, when given, gets this rank's part (its shards) before any reduction.
  double global_sum_squares(AdamW& optimizer, double* own = nullptr);
  // values (host doubles) summed over the pipeline stages, in place.
  void sum_over_stages(double* values, size_t count);

 private:
  void reduce_replicated_gradients();
  void reduce_tied_gradients();

  ComputeBackend& backend_;
  ModelParams& params_;
  const JobRuntime& runtime_;
  RootCopies root_;
  DeviceBuffer<float> replicated_scratch_;  // the replicated gradients, packed for one reduction
};

}  // namespace dfm
