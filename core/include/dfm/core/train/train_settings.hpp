// The [job], [model], [data], [train], [log], [sample] and [eval] settings the trainer
// runs with, read from a checked Config, and the core's own cross-key checks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <memory>

#include "dfm/core/models/architecture.hpp"
#include "dfm/core/train/optimizer.hpp"

namespace dfm {

class Config;

struct TrainSettings {
  std::string job_name;
  uint64_t seed = 0;
  std::filesystem::path out_dir;
  std::shared_ptr<const ModelSpec> model;  // [model], as its architecture reads it
  std::string data_source, data_path;
  bool shuffle = false;
  int64_t steps = 0, global_batch = 1, micro_batch = 1;
  LrSchedule lr;
  AdamWSettings adamw;
  bool skip_nonfinite = false;  // train.on_nonfinite = "skip" (else "abort")
  int64_t threads = 0;
  int64_t log_every = 10;
  bool progress = true;
  bool trace = false;  // [log] trace: Chrome trace files of the schedule
  bool tensorboard = true;  // [log] tensorboard: event files of the metrics
  double peak_tflops = 0;   // [log] peak_tflops: per device, for MFU; 0 = none
  int64_t sample_every = 0, sample_tokens = 64;
  std::string sample_prompt;
  double sample_temperature = 1.0;
  // [eval]: every = 0 turns validation off; held-out tokens from eval_path,
  // else the eval_holdout tail of the training data.
  int64_t eval_every = 0, eval_batches = 4;
  std::string eval_path;
  double eval_holdout = 0;
  // [checkpoint] (docs/checkpoints.md): an empty dir means <out_dir>/checkpoints;
  // every = 0 saves only when SIGTERM asks the job to stop.
  std::filesystem::path checkpoint_dir;
  int64_t checkpoint_every = 0, checkpoint_keep = 3;
  std::string checkpoint_resume = "auto";
  // A Hugging Face folder the initial weights come from (model.init_from); empty: from seed.
  std::string init_from;
};

// The model's keys must be in the schema (add_model_schema).
TrainSettings read_train_settings(const Config& config);

// Checks that involve several core keys (global_batch by micro_batch, the
// synthetic corpus needing a byte vocabulary, a token path for source =
// "tokens"), after the architecture's own checks of its [model] keys.
// Appends "file:line:col: key: ..." messages.
void check_train_settings(const Config& config, std::vector<std::string>& errors);

}  // namespace dfm
