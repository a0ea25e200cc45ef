#include "dfm/core/trainer.hpp"

#include <glog/logging.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "dfm/core/hf_export.hpp"
#include "dfm/core/sampler.hpp"

namespace dfm {

namespace {
constexpr int64_t kSyntheticCorpusBytes = int64_t{1} << 21;
}

Trainer::Trainer(const TrainSettings& settings, ComputeBackend& backend, JobRuntime runtime)
    : s_(settings),
      backend_(backend),
      runtime_(std::move(runtime)),
      rank_batch_(settings.global_batch / runtime_.dp_size),
      params_(backend, settings.shape, *runtime_.placement),
      model_(backend, params_, *runtime_.placement, settings.shape, settings.micro_batch),
      optimizer_(backend, settings.adamw),
      stream_(make_stream()),
      host_inputs_(static_cast<size_t>(settings.micro_batch * settings.shape.seq_len)),
      host_targets_(host_inputs_.size()),
      inputs_(backend, static_cast<int64_t>(host_inputs_.size())),
      targets_(backend, static_cast<int64_t>(host_inputs_.size())),
      positions_(backend, static_cast<int64_t>(host_inputs_.size())) {
  params_.initialise(s_.seed);
  for (const dfm_unit& u : params_.units()) runtime_.placement->on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  std::vector<int32_t> positions(host_inputs_.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(i % static_cast<size_t>(s_.shape.seq_len));
  positions_.upload(positions);
}

std::unique_ptr<TokenStream> Trainer::make_stream() const {
  const auto& sh = s_.shape;
  if (s_.data_source == "synthetic")
    return std::make_unique<TokenStream>(synthetic_corpus(s_.seed, kSyntheticCorpusBytes), "synthetic corpus",
                                         sh.seq_len, sh.vocab_size, s_.shuffle, s_.seed);
  return std::make_unique<TokenStream>(expand_glob(s_.data_path), sh.seq_len, sh.vocab_size, s_.shuffle, s_.seed);
}

// Rows dp_rank * rank_batch .. of the global batch, micro_batch at a time:
// the same windows in the same order as one process would see them.
void Trainer::load_micro_batch(int64_t step, int64_t micro) {
  const int64_t T = s_.shape.seq_len;
  for (int64_t j = 0; j < s_.micro_batch; ++j) {
    const int64_t window = step * s_.global_batch + runtime_.dp_rank * rank_batch_ + micro * s_.micro_batch + j;
    const auto offset = static_cast<size_t>(j * T);
    stream_->window(window, std::span(host_inputs_).subspan(offset, static_cast<size_t>(T)),
                    std::span(host_targets_).subspan(offset, static_cast<size_t>(T)));
  }
  inputs_.upload(host_inputs_);
  targets_.upload(host_targets_);
}

StepResult Trainer::train_step(int64_t step) {
  const int64_t T = s_.shape.seq_len;
  const int64_t micro_steps = rank_batch_ / s_.micro_batch;
  // The loss is the mean over every token of the global batch, so each
  // token's gradient is scaled by 1 / (global_batch * seq_len) on every rank,
  // and the strategies' reductions sum the ranks' gradients.
  const double tokens = static_cast<double>(s_.global_batch * T);
  params_.zero_grad_shards();
  double loss_sum = 0;
  std::vector<float> losses(static_cast<size_t>(s_.micro_batch * T));
  dfm_step_info info{sizeof(dfm_step_info), step, 0, micro_steps};
  for (int64_t micro = 0; micro < micro_steps; ++micro) {
    info.micro_batch = micro;
    load_micro_batch(step, micro);
    model_.forward(inputs_.data(), positions_.data(), s_.micro_batch, T, &info);
    const float* device_losses = model_.loss(targets_.data(), static_cast<float>(1.0 / tokens));
    backend_.download(losses.data(), device_losses, losses.size() * sizeof(float));
    loss_sum += std::accumulate(losses.begin(), losses.end(), 0.0);
    model_.backward(inputs_.data(), positions_.data(), &info);
  }
  runtime_.placement->finish_gradients(info);
  runtime_.sum_over_dp(&loss_sum, 1);

  StepResult r;
  r.loss = loss_sum / tokens;
  r.grad_norm = std::sqrt(runtime_.placement->reduce_grad_sum_squares(optimizer_.local_grad_sum_squares(params_)));
  r.lr = s_.lr.at(step + 1);
  optimizer_.step(params_, r.lr, step + 1, clip_coefficient(r.grad_norm, s_.adamw.max_norm));
  for (const dfm_unit& u : params_.units()) runtime_.placement->on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  return r;
}

// Every rank samples (the forward may gather sharded parameters, a collective);
// rank 0 prints.
void Trainer::print_sample(int64_t step) {
  SampleRequest request{encode_prompt(s_.sample_prompt, s_.shape.vocab_size), s_.sample_tokens, s_.sample_temperature,
                        s_.seed, step};
  const auto generated = sample_tokens(backend_, model_, request);
  if (runtime_.is_rank0())
    LOG(INFO) << "sample at step " << step << ": " << decode_tokens(request.prompt, s_.shape.vocab_size) << "|"
              << decode_tokens(generated, s_.shape.vocab_size);
}

// Every rank takes part in gathering the units; rank 0 writes the files.
void Trainer::export_final() {
  HfExportWriter writer(s_.shape);
  for (const dfm_unit& u : params_.units()) {
    runtime_.placement->on_unit(u.index, DFM_UNIT_GATHER, nullptr);
    if (runtime_.is_rank0()) {
      std::vector<float> full(static_cast<size_t>(u.numel));
      backend_.download(full.data(), u.full_param, full.size() * sizeof(float));
      for (const ParamInfo& info : params_.infos())
        if (info.unit == u.index) writer.add(info, full.data() + info.offset);
    }
    runtime_.placement->on_unit(u.index, DFM_UNIT_RELEASE, nullptr);
  }
  if (runtime_.is_rank0()) {
    writer.write(s_.out_dir / "final", params_.infos());
    LOG(INFO) << "wrote " << (s_.out_dir / "final" / "model.safetensors").string() << " and config.json";
  }
}

StepMetrics Trainer::step_metrics(int64_t step, const StepResult& r, double seconds,
                                  const std::map<std::string, uint64_t>& bytes_before) {
  StepMetrics m;
  m.step = step + 1;
  m.loss = r.loss;
  m.lr = r.lr;
  m.grad_norm = r.grad_norm;
  m.step_ms = seconds * 1e3;
  m.tokens_per_s = static_cast<double>(s_.global_batch * s_.shape.seq_len) / seconds;
  // This rank's model state: its shards of parameters, gradients and the two
  // moments, plus the peak of what the strategies materialised during the step.
  m.param_bytes = params_.shard_bytes();
  m.grad_bytes = params_.shard_bytes();
  m.optimizer_bytes = 2 * params_.shard_bytes();
  m.gathered_peak_bytes = runtime_.strategy_memory_peak();
  for (const auto& [axis, total] : runtime_.bytes_sent()) {
    const auto before = bytes_before.find(axis);
    m.comm_bytes[axis] = total - (before == bytes_before.end() ? 0 : before->second);
  }
  m.strategy = runtime_.take_strategy_metrics();
  return m;
}

void Trainer::run() {
  const bool rank0 = runtime_.is_rank0();
  if (rank0) {
    std::filesystem::create_directories(s_.out_dir);
    LOG(INFO) << "data: " << stream_->describe();
    LOG(INFO) << "model: GPT-2, " << s_.shape.n_layer << " layers, " << s_.shape.n_head << " heads, d_model "
              << s_.shape.d_model << ", vocab " << s_.shape.vocab_size << ", seq_len " << s_.shape.seq_len << ", "
              << params_.total_count() << " parameters";
  }
  if (s_.steps == 0) {
    export_final();
    if (rank0) LOG(INFO) << "train.steps = 0: wrote the initial weights to " << (s_.out_dir / "final").string();
    return;
  }
  std::unique_ptr<MetricsWriter> metrics;
  std::unique_ptr<ProgressReporter> progress;
  if (rank0) {
    metrics = std::make_unique<MetricsWriter>(s_.out_dir / "metrics.jsonl");
    progress = std::make_unique<ProgressReporter>(s_.steps, s_.log_every, s_.progress && isatty(STDOUT_FILENO));
  }
  for (int64_t step = 0; step < s_.steps; ++step) {
    runtime_.reset_strategy_memory_peak();
    runtime_.take_strategy_metrics();  // what sampling or the export reported is not this step's
    const auto bytes_before = runtime_.bytes_sent();
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = train_step(step);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const StepMetrics m = step_metrics(step, r, seconds, bytes_before);
    if (rank0) {
      metrics->write(m);
      progress->step(m);
    }
    if (s_.sample_every > 0 && m.step % s_.sample_every == 0) {
      if (progress) progress->clear_line();
      print_sample(m.step);
    }
  }
  if (rank0) progress->finish();
  export_final();
}

}  // namespace dfm
