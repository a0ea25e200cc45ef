// The training loop of one process: data windows -> micro-batches ->
// forward/loss/backward in the pipeline's schedule (trainer_schedule.cpp) ->
// finished gradients and their global norm (gradient_finish.hpp) -> clipping
// -> AdamW -> metrics, samples, checkpoints, and the final Hugging Face
// export. The model is whatever TrainSettings::model specifies; the roles of
// the runtime are always present (identities without strategies).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/data/data_loader.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/model.hpp"
#include "dfm/core/models/model_params.hpp"
#include "dfm/core/observe/metrics.hpp"
#include "dfm/core/observe/trace_writer.hpp"
#include "dfm/core/parallel/gradient_finish.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/train/optimizer.hpp"
#include "dfm/core/train/train_settings.hpp"

namespace dfm {

// A step whose loss or gradient norm is NaN or infinite under
// train.on_nonfinite = "abort": names the step and the first rank that saw it.
class NonFiniteStep : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StepResult {
  double loss = 0;       // mean over every token of the global batch
  double grad_norm = 0;  // before clipping
  double lr = 0;
  bool stop_requested = false;  // some rank received SIGTERM before this step's reduction
  bool skipped = false;         // not finite, and train.on_nonfinite = "skip" dropped the update
};

// Every rank runs the same loop on its own rows of each global batch (the dp
// coordinate picks them); rank 0 alone writes metrics, logs progress and
// exports.
class Trainer {
 public:
  Trainer(const TrainSettings& settings, ComputeBackend& backend, JobRuntime runtime);
  // One process: every role its identity.
  Trainer(const TrainSettings& settings, ComputeBackend& backend);

  // The whole job: `steps` optimizer steps with metrics and progress, then
  // <out_dir>/final/{model.safetensors, config.json}. steps = 0 exports the
  // initial weights. Resumes from a checkpoint as [checkpoint] resume says,
  // saves every [checkpoint] every steps, and on SIGTERM saves after the
  // current step and returns without the final export.
  void run();

  // One optimizer step (0-based `step`); exposed for tests. A loss or
  // gradient norm that is not finite throws NonFiniteStep, or with
  // train.on_nonfinite = "skip" leaves the weights as they were.
  StepResult train_step(int64_t step);
  // Updates dropped by train.on_nonfinite = "skip" so far, resumed ones included.
  int64_t skipped_steps() const { return skipped_steps_; }
  // [eval]: the mean per-token loss over the held-out windows, the same value
  // on every rank and for every layout (trainer_eval.cpp). Collective.
  double validation_loss();

  ModelParams& params() { return params_; }
  Model& model() { return *model_; }

 private:
  // The training stream and, with [eval], the held-out one (eval.path, or
  // the eval.holdout tail, which the training stream then stops before).
  std::unique_ptr<TokenStream> make_stream(bool shuffle) const;
  std::unique_ptr<TokenStream> make_eval_stream();
  bool validates_after(int64_t steps_done) const;
  // Which units this rank stores (its pipeline chunks'), and the model's
  // chunks with an activation slot per micro-batch the schedule keeps in flight.
  void initialise_params();
  static std::vector<bool> held_units(const Pipeline& pipeline, int64_t n_layer);
  static ModelLayout model_layout(const Pipeline& pipeline, const std::vector<PipelineAction>& schedule);

  // The step's forwards and backwards in the pipeline's order (trainer_schedule.cpp);
  // returns the sum of the per-token losses this rank computed.
  double run_schedule(int64_t step, dfm_step_info& info);
  float* boundary_tensor(const PipelineAction& transfer, int32_t slot);
  MicroBatch micro_batch(int64_t micro) const;
  void load_step(int64_t step);  // every micro-batch of the step, to the device
  void load_micro_batch(int64_t step, int64_t micro);
  // The first rank (lowest number) whose own loss or gradients were not
  // finite at `step`, and which of the two; every rank takes part.
  std::string first_nonfinite_rank(int64_t step, double own_loss, double own_grad_sum_squares);
  void print_sample(int64_t step);
  void export_final();
  void write_trace();
  CheckpointJob checkpoint_job();
  std::filesystem::path checkpoint_dir() const;
  std::filesystem::path save_checkpoint_after(int64_t steps_done);
  // Collective: gathers every rank's step time and memory peak.
  StepMetrics step_metrics(int64_t step, const StepResult& r, double seconds,
                           const std::map<std::string, uint64_t>& bytes_before);

  TrainSettings s_;
  ModelDims dims_;
  ComputeBackend& backend_;
  JobRuntime runtime_;
  int64_t rank_batch_;     // sequences of each global batch this rank processes
  int64_t micro_batches_;  // per optimizer step on this rank
  std::vector<PipelineAction> schedule_;  // one step's, the same every step
  ModelParams params_;
  std::unique_ptr<Model> model_;
  AdamW optimizer_;
  GradientFinisher gradients_;
  std::unique_ptr<TokenStream> stream_;
  std::unique_ptr<TokenStream> eval_stream_;  // null without [eval]
  // Global positions of this rank's tokens of each sequence (all of them without cp).
  std::vector<int64_t> local_positions_;
  int64_t local_tokens_;
  int64_t micro_rows_;  // tokens of one micro-batch on this rank
  std::vector<int32_t> host_inputs_, host_targets_;      // this rank's tokens of a micro-batch
  std::vector<int32_t> window_inputs_, window_targets_;  // one whole window
  DeviceBuffer<int32_t> inputs_, targets_;               // [micro_batches, micro_rows]: the step's
  DeviceBuffer<int32_t> positions_;                      // [micro_rows], the same for every micro-batch
  int64_t skipped_steps_ = 0;                // AdamW's step count trails the step by these
  int64_t poisoned_step_ = -1;               // DFM_TEST_NONFINITE_STEP (docs/training.md), 1-based
  int64_t activation_sets_peak_ = 0;        // of the last step
  std::unique_ptr<TraceWriter> trace_;      // [log] trace
};

}  // namespace dfm
