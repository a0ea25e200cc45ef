// What a run reports about itself: metrics.jsonl (one JSON object per step,
// for tools), and for people a live progress line on a terminal or a plain
// line every [log] every steps otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dfm {

struct StepMetrics {
  int64_t step = 0;  // 1-based
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, step_ms = 0;
  // Model FLOP/s over the peak of every device of the job ([log] peak_tflops).
  std::optional<double> mfu;
  // train.on_nonfinite = "skip": this step's update was dropped; how many so far.
  bool skipped = false;
  int64_t skipped_steps = 0;
  // [eval]: the validation loss after this step, on the steps that computed one.
  std::optional<double> val_loss;
  // This rank's model state in bytes: its shards of parameters, gradients and
  // AdamW moments, and the peak of parameters/gradients a strategy held
  // materialised (gathered) during the step.
  int64_t param_bytes = 0, grad_bytes = 0, optimizer_bytes = 0, gathered_peak_bytes = 0;
  // Activations: the bytes of the slots allocated for micro-batches in flight,
  // and the most micro-batch activation sets (one per micro-batch and model
  // chunk) this rank held at once during the step, counted as it ran.
  int64_t activation_bytes = 0, activation_sets_peak = 0;
  std::map<std::string, int64_t> strategy_peak_bytes;  // the peak per strategy plugin
  // Per rank (rank 0 gathers them): the step's time on that rank, and the
  // most device bytes allocated through its compute backend during the step.
  std::vector<double> rank_step_ms;
  std::vector<int64_t> rank_peak_bytes;
  // Bytes this rank sent during the step, per mesh axis.
  std::map<std::string, uint64_t> comm_bytes;
  // What strategies reported for the step ("fsdp2.comm_wait_ms", ...).
  std::map<std::string, double> strategy;
};

// A step's metrics as TensorBoard scalars: train/ (loss, lr, grad_norm),
// val/loss, perf/ (tokens_per_s, step_ms, mfu) and per rank
// rank<r>/step_ms and rank<r>/peak_memory_bytes.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const StepMetrics& m);

class MetricsWriter {
 public:
  explicit MetricsWriter(const std::filesystem::path& path);  // truncates
  void write(const StepMetrics& m);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

class ProgressReporter {
 public:
  // Live line when `interactive` (stdout is a terminal and [log] progress is on).
  ProgressReporter(int64_t total_steps, int64_t log_every, bool interactive);
  void step(const StepMetrics& m);
  // Clears the live line so a log line written next starts on an empty line
  // (the live line comes back with the next step).
  void clear_line();
  // Ends the live line; prints a summary.
  void finish();

  static std::string format_duration(double seconds);  // "1:05", "1:02:03"

 private:
  int64_t total_, every_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
  double smoothed_tokens_per_s_ = 0;
};

}  // namespace dfm
