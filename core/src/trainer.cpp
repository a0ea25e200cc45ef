#include "dfm/core/trainer.hpp"

#include <glog/logging.h>
#include <unistd.h>

#include <chrono>
#include <numeric>

#include "dfm/core/hf_export.hpp"
#include "dfm/core/metrics.hpp"
#include "dfm/core/sampler.hpp"

namespace dfm {

namespace {
constexpr int64_t kSyntheticCorpusBytes = int64_t{1} << 21;
}

Trainer::Trainer(const TrainSettings& settings, ComputeBackend& backend)
    : s_(settings),
      backend_(backend),
      params_(backend, settings.shape),
      model_(backend, params_, settings.shape, settings.micro_batch),
      optimizer_(backend, settings.adamw),
      stream_(make_stream()),
      host_inputs_(static_cast<size_t>(settings.micro_batch * settings.shape.seq_len)),
      host_targets_(host_inputs_.size()),
      inputs_(backend, static_cast<int64_t>(host_inputs_.size())),
      targets_(backend, static_cast<int64_t>(host_inputs_.size())),
      positions_(backend, static_cast<int64_t>(host_inputs_.size())) {
  params_.initialise(s_.seed);
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

void Trainer::load_micro_batch(int64_t step, int64_t micro) {
  const int64_t T = s_.shape.seq_len;
  for (int64_t j = 0; j < s_.micro_batch; ++j) {
    const int64_t window = step * s_.global_batch + micro * s_.micro_batch + j;
    const auto offset = static_cast<size_t>(j * T);
    stream_->window(window, std::span(host_inputs_).subspan(offset, static_cast<size_t>(T)),
                    std::span(host_targets_).subspan(offset, static_cast<size_t>(T)));
  }
  inputs_.upload(host_inputs_);
  targets_.upload(host_targets_);
}

StepResult Trainer::train_step(int64_t step) {
  const int64_t T = s_.shape.seq_len;
  const int64_t micro_steps = s_.global_batch / s_.micro_batch;
  // The loss is the mean over every token of the global batch, so each
  // token's gradient is scaled by 1 / (global_batch * seq_len).
  const double tokens = static_cast<double>(s_.global_batch * T);
  params_.zero_grads();
  double loss_sum = 0;
  std::vector<float> losses(static_cast<size_t>(s_.micro_batch * T));
  for (int64_t micro = 0; micro < micro_steps; ++micro) {
    load_micro_batch(step, micro);
    model_.forward(inputs_.data(), positions_.data(), s_.micro_batch, T);
    const float* device_losses = model_.loss(targets_.data(), static_cast<float>(1.0 / tokens));
    backend_.download(losses.data(), device_losses, losses.size() * sizeof(float));
    loss_sum += std::accumulate(losses.begin(), losses.end(), 0.0);
    model_.backward(inputs_.data(), positions_.data());
  }
  StepResult r;
  r.loss = loss_sum / tokens;
  r.grad_norm = optimizer_.grad_norm(params_);
  r.lr = s_.lr.at(step + 1);
  optimizer_.step(params_, r.lr, step + 1, clip_coefficient(r.grad_norm, s_.adamw.max_norm));
  return r;
}

void Trainer::print_sample(int64_t step) {
  SampleRequest request{encode_prompt(s_.sample_prompt, s_.shape.vocab_size), s_.sample_tokens, s_.sample_temperature,
                        s_.seed, step};
  const auto generated = sample_tokens(backend_, model_, request);
  LOG(INFO) << "sample at step " << step << ": " << decode_tokens(request.prompt, s_.shape.vocab_size) << "|"
            << decode_tokens(generated, s_.shape.vocab_size);
}

void Trainer::run() {
  std::filesystem::create_directories(s_.out_dir);
  LOG(INFO) << "data: " << stream_->describe();
  LOG(INFO) << "model: GPT-2, " << s_.shape.n_layer << " layers, " << s_.shape.n_head << " heads, d_model "
            << s_.shape.d_model << ", vocab " << s_.shape.vocab_size << ", seq_len " << s_.shape.seq_len << ", "
            << params_.total_count() << " parameters";
  if (s_.steps == 0) {
    export_hf_gpt2(s_.out_dir / "final", s_.shape, params_);
    LOG(INFO) << "train.steps = 0: wrote the initial weights to " << (s_.out_dir / "final").string();
    return;
  }
  MetricsWriter metrics(s_.out_dir / "metrics.jsonl");
  ProgressReporter progress(s_.steps, s_.log_every, s_.progress && isatty(STDOUT_FILENO));
  const auto state_bytes = params_.total_count() * static_cast<int64_t>(sizeof(float));
  for (int64_t step = 0; step < s_.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = train_step(step);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    StepMetrics m;
    m.step = step + 1;
    m.loss = r.loss;
    m.lr = r.lr;
    m.grad_norm = r.grad_norm;
    m.step_ms = seconds * 1e3;
    m.tokens_per_s = static_cast<double>(s_.global_batch * s_.shape.seq_len) / seconds;
    m.param_bytes = state_bytes;
    m.grad_bytes = state_bytes;
    m.optimizer_bytes = 2 * state_bytes;
    metrics.write(m);
    progress.step(m);
    if (s_.sample_every > 0 && m.step % s_.sample_every == 0) print_sample(m.step);
  }
  progress.finish();
  export_hf_gpt2(s_.out_dir / "final", s_.shape, params_);
  LOG(INFO) << "wrote " << (s_.out_dir / "final" / "model.safetensors").string() << " and config.json";
}

}  // namespace dfm
