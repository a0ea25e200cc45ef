// Resuming a job from its checkpoints ([checkpoint] resume): which
// checkpoint, loading it on every rank, and checking that it continues this
// run (the data order and schedule are functions of seed, step and batch).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "dfm/core/checkpoint/checkpoint.hpp"

namespace dfm {

struct ResumeRequest {
  std::string resume;             // "auto", "never" or a step folder
  std::filesystem::path dir;      // where the job's checkpoints are
  std::filesystem::path out_dir;  // the job's outputs (metrics.jsonl)
  uint64_t seed = 0;
  int64_t global_batch = 0;
};

// Collective. Rank 0 picks the checkpoint (and clears interrupted saves) and
// tells the others, so every rank loads the same one; each rank then reads
// its shards. Returns where training continues (all zero but seed and
// global_batch when nothing was resumed): step is the first step to run;
// step - adam_step updates were skipped (train.on_nonfinite = "skip").
TrainerState resume_training(const CheckpointJob& job, const ResumeRequest& request);

}  // namespace dfm
