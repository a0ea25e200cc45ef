#include "dfm/core/checkpoint/hf_import.hpp"
#include "dfm/core/train/trainer.hpp"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <regex>

#include <nlohmann/json.hpp>

#include "dfm/core/parallel/activation_slots.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/hf_export.hpp"
#include "dfm/core/checkpoint/resume.hpp"
#include "dfm/core/observe/tensorboard_writer.hpp"
#include "dfm/core/train/sampler.hpp"

namespace dfm {

Trainer::Trainer(const TrainSettings& settings, ComputeBackend& backend)
    : Trainer(settings, backend, JobRuntime::single_process(backend, settings.model->dims().n_layer)) {}

Trainer::Trainer(const TrainSettings& settings, ComputeBackend& backend, JobRuntime runtime)
    : s_(settings),
      dims_(settings.model->dims()),
      backend_(backend),
      runtime_(std::move(runtime)),
      rank_batch_(settings.global_batch / runtime_.dp_size),
      micro_batches_(rank_batch_ / settings.micro_batch),
      schedule_(runtime_.pipeline().schedule(micro_batches_)),
      params_(backend, settings.model->params(runtime_.tensor().rank(), runtime_.tensor().size()),
              static_cast<int32_t>(dims_.n_layer + 1), runtime_.placement(),
              held_units(runtime_.pipeline(), dims_.n_layer)),
      model_(settings.model->build(backend, params_, runtime_.roles, settings.micro_batch,
                                   model_layout(runtime_.pipeline(), schedule_))),
      optimizer_(backend, settings.adamw),
      gradients_(backend, params_, runtime_),
      stream_(make_stream(settings.shuffle)),
      eval_stream_(make_eval_stream()),
      local_positions_(runtime_.sequence().positions(dims_.seq_len, dims_.seq_len / runtime_.cp_size)),
      local_tokens_(static_cast<int64_t>(local_positions_.size())),
      micro_rows_(settings.micro_batch * local_tokens_),
      host_inputs_(static_cast<size_t>(micro_rows_)),
      host_targets_(host_inputs_.size()),
      window_inputs_(static_cast<size_t>(dims_.seq_len)),
      window_targets_(window_inputs_.size()),
      inputs_(backend, micro_batches_ * micro_rows_),
      targets_(backend, micro_batches_ * micro_rows_),
      positions_(backend, micro_rows_) {
  // Test hook (docs/training.md): "<step>" or "<step>@<rank>" makes that
  // rank's loss of that 1-based step NaN, as a numerical blow-up would.
  if (const char* poison = std::getenv("DFM_TEST_NONFINITE_STEP")) {
    std::cmatch m;
    if (!std::regex_match(poison, m, std::regex(R"(([1-9]\d{0,17})(@(\d{1,9}))?)")))
      throw std::runtime_error(std::string("DFM_TEST_NONFINITE_STEP: '") + poison +
                               "' is not <step> or <step>@<rank> (a step from 1)");
    if (!m[3].matched || std::stoll(m[3].str()) == runtime_.rank) poisoned_step_ = std::stoll(m[1].str());
  }
  initialise_params();
  for (const dfm_unit& u : params_.units()) runtime_.placement().on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  // Every sequence of a micro-batch has this rank's tokens at their true positions.
  std::vector<int32_t> positions(host_inputs_.size());
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = static_cast<int32_t>(local_positions_[i % local_positions_.size()]);
  positions_.upload(positions);
  if (s_.trace) {
    trace_ = std::make_unique<TraceWriter>(runtime_.rank);
    trace_->name_lane(0, "compute");
    trace_->name_lane(1, "send / receive");
  }
}

// From the seed, or from a fine-tune's checkpoint: each rank reads the
// elements of its own shards (a resume later replaces both).
void Trainer::initialise_params() {
  if (s_.init_from.empty()) return params_.initialise(s_.seed);
  const HfCheckpoint checkpoint = HfCheckpoint::open(s_.init_from);
  params_.initialise([&](const ParamInfo& info, int64_t begin, int64_t end, float* out) {
    checkpoint.read(info, *s_.model, begin, end, out);
  });
  if (runtime_.is_rank0()) LOG(INFO) << "initial weights from " << s_.init_from;
}

std::vector<bool> Trainer::held_units(const Pipeline& pipeline, int64_t n_layer) {
  std::vector<bool> held(static_cast<size_t>(n_layer + 1));
  for (size_t u = 0; u < held.size(); ++u) held[u] = pipeline.holds(static_cast<int32_t>(u));
  return held;
}

// A slot per micro-batch a chunk holds at once (ActivationSlots).
ModelLayout Trainer::model_layout(const Pipeline& pipeline, const std::vector<PipelineAction>& schedule) {
  return {pipeline.my_chunks(), ActivationSlots::needed(pipeline.my_chunks(), schedule)};
}

std::unique_ptr<TokenStream> Trainer::make_stream(bool shuffle) const {
  if (s_.data_source == "synthetic")
    return std::make_unique<TokenStream>(synthetic_corpus(s_.seed, kSyntheticCorpusBytes), "synthetic corpus",
                                         dims_.seq_len, dims_.vocab_size, shuffle, s_.seed);
  return std::make_unique<TokenStream>(expand_glob(s_.data_path), dims_.seq_len, dims_.vocab_size, shuffle, s_.seed);
}

// Validation windows are read in order (never shuffled), so every
// evaluation sees the same ones.
std::unique_ptr<TokenStream> Trainer::make_eval_stream() {
  if (s_.eval_every == 0) return nullptr;
  if (!s_.eval_path.empty())
    return std::make_unique<TokenStream>(expand_glob(s_.eval_path), dims_.seq_len, dims_.vocab_size, false, s_.seed);
  const int64_t total = stream_->total_tokens(), held = held_out_tokens(total, s_.eval_holdout);
  auto held_out = make_stream(false);
  held_out->keep_range(total - held, total);
  stream_->keep_range(0, total - held);
  return held_out;
}

bool Trainer::validates_after(int64_t steps_done) const {
  return eval_stream_ && (steps_done % s_.eval_every == 0 || steps_done == s_.steps);
}

// Rows dp_rank * rank_batch .. of the global batch, micro_batch at a time:
// the same windows in the same order as one process would see them.
// With a sequence split (cp), the rank keeps its own tokens of each window.
void Trainer::load_micro_batch(int64_t step, int64_t micro) {
  for (int64_t j = 0; j < s_.micro_batch; ++j) {
    const int64_t window = step * s_.global_batch + runtime_.dp_rank * rank_batch_ + micro * s_.micro_batch + j;
    stream_->window(window, window_inputs_, window_targets_);
    for (int64_t t = 0; t < local_tokens_; ++t) {
      const auto at = static_cast<size_t>(local_positions_[static_cast<size_t>(t)]);
      host_inputs_[static_cast<size_t>(j * local_tokens_ + t)] = window_inputs_[at];
      host_targets_[static_cast<size_t>(j * local_tokens_ + t)] = window_targets_[at];
    }
  }
  const size_t bytes = host_inputs_.size() * sizeof(int32_t);
  backend_.upload(inputs_.data() + micro * micro_rows_, host_inputs_.data(), bytes);
  backend_.upload(targets_.data() + micro * micro_rows_, host_targets_.data(), bytes);
}

void Trainer::load_step(int64_t step) {
  for (int64_t micro = 0; micro < micro_batches_; ++micro) load_micro_batch(step, micro);
}

StepResult Trainer::train_step(int64_t step) {
  // The loss is the mean over every token of the global batch, so each
  // token's gradient is scaled by 1 / (global_batch * seq_len) on every rank,
  // and the strategies' reductions sum the ranks' gradients.
  const double tokens = static_cast<double>(s_.global_batch * dims_.seq_len);
  params_.zero_grad_shards();
  dfm_step_info info{sizeof(dfm_step_info), step, 0, micro_batches_};
  const double loss_sum =
      run_schedule(step, info) + (step + 1 == poisoned_step_ ? std::numeric_limits<double>::quiet_NaN() : 0.0);
  gradients_.finish(info);
  // The stop request rides on the loss reduction, so every rank sees the
  // same answer at the same step (SIGTERM reaches ranks at different times).
  // The last stage computed the loss; the data ranks each a part of it.
  double reduced[2] = {loss_sum, stop_signal_pending() ? 1.0 : 0.0};
  gradients_.sum_over_stages(reduced, 2);
  runtime_.sum_over_data_ranks(reduced, 2);

  StepResult r;
  r.loss = reduced[0] / tokens;
  r.stop_requested = reduced[1] > 0;
  double own_sum_squares = 0;
  r.grad_norm = std::sqrt(gradients_.global_sum_squares(optimizer_, &own_sum_squares));
  r.lr = s_.lr.at(step + 1);
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    // Every rank sees the same reduced values, so every rank takes this branch.
    const std::string what = "step " + std::to_string(step + 1) + ": the loss is " + std::to_string(r.loss) +
                             " and the gradient norm " + std::to_string(r.grad_norm) + " (first not finite on " +
                             first_nonfinite_rank(step, loss_sum, own_sum_squares) + ")";
    if (!s_.skip_nonfinite)
      throw NonFiniteStep("train: " + what + "; train.on_nonfinite = \"skip\" would drop such updates instead");
    r.skipped = true;
    ++skipped_steps_;
    if (runtime_.is_rank0())
      LOG(WARNING) << what << ": skipped its update (train.on_nonfinite = \"skip\"), " << skipped_steps_
                   << " skipped so far";
    return r;
  }
  optimizer_.step(params_, r.lr, step + 1 - skipped_steps_, clip_coefficient(r.grad_norm, s_.adamw.max_norm));
  for (const dfm_unit& u : params_.units()) runtime_.placement().on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  return r;
}

// Only on the failure path: an exchange through the store, which spans
// every rank whatever the layout. The loss is a rank's own (before any
// reduction); its gradient shards have already been reduced over its data
// ranks, so a rank can see a peer's non-finite gradient there.
std::string Trainer::first_nonfinite_rank(int64_t step, double own_loss, double own_grad_sum_squares) {
  const std::string mine = !std::isfinite(own_loss) ? "loss" : !std::isfinite(own_grad_sum_squares) ? "gradients" : "";
  const auto all = runtime_.exchange("nonfinite/" + std::to_string(step + 1), mine);
  for (const std::string& kind : {std::string("loss"), std::string("gradients")})
    for (size_t r = 0; r < all.size(); ++r)
      if (all[r] == kind) return "rank " + std::to_string(r) + ", its own " + kind;
  return "no rank's own values: the reductions overflowed";
}

// Every rank samples (the forward may gather sharded parameters, a
// collective, and walks the pipeline's stages); rank 0 prints.
void Trainer::print_sample(int64_t step) {
  const int64_t V = dims_.vocab_size;
  SampleRequest request{encode_prompt(s_.sample_prompt, V), s_.sample_tokens, s_.sample_temperature, s_.seed, step};
  const auto generated = sample_tokens(
      [this, V](const std::vector<int32_t>& window, float* logits) {
        forward_next_token_logits(*model_, runtime_.pipeline(), backend_, V, window, logits);
      },
      V, dims_.seq_len, request);
  if (runtime_.is_rank0())
    LOG(INFO) << "sample at step " << step << ": " << decode_tokens(request.prompt, V) << "|"
              << decode_tokens(generated, V);
}

void Trainer::export_final() {
  export_model(*s_.model, params_, runtime_, backend_, s_.out_dir / "final");
  if (runtime_.is_rank0())
    LOG(INFO) << "wrote " << (s_.out_dir / "final" / "model.safetensors").string() << " and config.json";
}

StepMetrics Trainer::step_metrics(int64_t step, const StepResult& r, double seconds,
                                  const std::map<std::string, uint64_t>& bytes_before) {
  StepMetrics m;
  m.step = step + 1;
  m.loss = r.loss;
  m.lr = r.lr;
  m.grad_norm = r.grad_norm;
  m.skipped = r.skipped;
  m.skipped_steps = skipped_steps_;
  m.step_ms = seconds * 1e3;
  m.tokens_per_s = static_cast<double>(s_.global_batch * dims_.seq_len) / seconds;
  if (s_.peak_tflops > 0)
    m.mfu = m.tokens_per_s * training_flops_per_token(*s_.model) /
            (static_cast<double>(runtime_.world) * s_.peak_tflops * 1e12);
  // This rank's model state: its shards of parameters, gradients and the two
  // moments, plus the peak of what the strategies materialised during the step.
  m.param_bytes = params_.shard_bytes();
  m.grad_bytes = params_.shard_bytes();
  m.optimizer_bytes = 2 * params_.shard_bytes();
  m.gathered_peak_bytes = runtime_.strategy_memory_peak();
  m.activation_bytes = model_->activation_bytes();
  m.activation_sets_peak = activation_sets_peak_;
  m.strategy_peak_bytes = runtime_.strategy_memory_peaks();
  for (const auto& [axis, total] : runtime_.bytes_sent()) {
    const auto before = bytes_before.find(axis);
    m.comm_bytes[axis] = total - (before == bytes_before.end() ? 0 : before->second);
  }
  m.strategy = runtime_.take_strategy_metrics();
  // Bytes travel as two floats below 2^24 each, so the sums that gather them are exact.
  constexpr double kSplit = 1 << 24;
  const auto peak = static_cast<double>(backend_.allocated_peak_bytes());
  const std::vector<float> all = runtime_.gather_from_ranks(
      {static_cast<float>(m.step_ms), static_cast<float>(std::floor(peak / kSplit)),
       static_cast<float>(std::fmod(peak, kSplit))});
  for (size_t r = 0; r < all.size(); r += 3) {
    m.rank_step_ms.push_back(all[r]);
    m.rank_peak_bytes.push_back(static_cast<int64_t>(static_cast<double>(all[r + 1]) * kSplit + all[r + 2]));
  }
  return m;
}

std::filesystem::path Trainer::checkpoint_dir() const {
  return s_.checkpoint_dir.empty() ? s_.out_dir / "checkpoints" : s_.checkpoint_dir;
}

CheckpointJob Trainer::checkpoint_job() { return {backend_, params_, runtime_, *s_.model}; }

std::filesystem::path Trainer::save_checkpoint_after(int64_t steps_done) {
  const TrainerState state{steps_done, steps_done * s_.global_batch, steps_done, steps_done - skipped_steps_,
                           s_.seed,    s_.global_batch};
  const auto t0 = std::chrono::steady_clock::now();
  const auto path = save_checkpoint(checkpoint_job(), checkpoint_dir(), state, s_.checkpoint_keep);
  if (runtime_.is_rank0())
    LOG(INFO) << "saved checkpoint " << path.string() << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s";
  return path;
}

void Trainer::run() {
  const bool rank0 = runtime_.is_rank0();
  if (rank0) {
    std::filesystem::create_directories(s_.out_dir);
    LOG(INFO) << "data: " << stream_->describe();
    if (eval_stream_) LOG(INFO) << "validation data: " << eval_stream_->describe();
    LOG(INFO) << "model: " << s_.model->describe() << ", " << params_.total_count() << " parameters";
  }
  if (s_.steps == 0) {
    export_final();
    if (rank0) LOG(INFO) << "train.steps = 0: wrote the initial weights to " << (s_.out_dir / "final").string();
    return;
  }
  const TrainerState resumed =
      resume_training(checkpoint_job(), {s_.checkpoint_resume, checkpoint_dir(), s_.out_dir, s_.seed, s_.global_batch});
  const int64_t first_step = resumed.step;
  skipped_steps_ = resumed.step - resumed.adam_step;
  std::unique_ptr<MetricsWriter> metrics;
  std::unique_ptr<TensorBoardWriter> tensorboard;
  std::unique_ptr<ProgressReporter> progress;
  if (rank0) {
    metrics = std::make_unique<MetricsWriter>(s_.out_dir / "metrics.jsonl");
    if (s_.tensorboard) tensorboard = std::make_unique<TensorBoardWriter>(s_.out_dir / "tensorboard");
    progress = std::make_unique<ProgressReporter>(s_.steps, s_.log_every, s_.progress && isatty(STDOUT_FILENO));
  }
  for (int64_t step = first_step; step < s_.steps; ++step) {
    runtime_.reset_strategy_memory_peak();
    backend_.reset_allocated_peak();
    runtime_.take_strategy_metrics();  // what sampling or the export reported is not this step's
    const auto bytes_before = runtime_.bytes_sent();
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = train_step(step);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    StepMetrics m = step_metrics(step, r, seconds, bytes_before);
    if (validates_after(m.step)) {
      const auto e0 = std::chrono::steady_clock::now();
      m.val_loss = validation_loss();
      if (progress) progress->clear_line();
      if (rank0)
        LOG(INFO) << "step " << m.step << ": validation loss " << *m.val_loss << " (" << s_.eval_batches << " x "
                  << s_.global_batch << " held-out windows, "
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count() << " s)";
    }
    if (rank0) {
      metrics->write(m);
      if (tensorboard) tensorboard->scalars(m.step, tensorboard_scalars(m));
      progress->step(m);
    }
    if (s_.sample_every > 0 && m.step % s_.sample_every == 0) {
      if (progress) progress->clear_line();
      print_sample(m.step);
    }
    const bool periodic = s_.checkpoint_every > 0 && m.step % s_.checkpoint_every == 0;
    if (!periodic && !r.stop_requested) continue;
    if (progress) progress->clear_line();
    const auto saved = save_checkpoint_after(m.step);
    if (r.stop_requested) {
      write_trace();
      if (rank0) LOG(INFO) << "SIGTERM: stopped after step " << m.step << " and saved " << saved.string()
                           << "; the next launch resumes from it";
      return;
    }
  }
  if (rank0) progress->finish();
  write_trace();
  export_final();
}

}  // namespace dfm
