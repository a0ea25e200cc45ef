// Training throughput of GPT-2 or Llama shapes on any compute backend, as a
// fraction of the backend's own rate on one of the model's GEMMs measured in
// the same run.
//
//   bench_train_throughput [--arch gpt|llama --layers 12 --d-model 768 --heads 12
//                           --kv-heads 4 --ffn F --vocab V --seq 256 --batch 4 --steps 6
//                           --threads 0 --compute cpu --precision fp32|bf16
//                           --activations fp32|bf16 --peak-tflops P]
//
// --arch llama (12 heads sharing --kv-heads 4, an MLP of --ffn, Llama's rule
// by default, and an untied head; vocabulary 32000 by default) is the
// Llama family's block at GPT-2 124M's size; bench/torch_train_throughput.py
// times PyTorch on the same shape.
//
// With --peak-tflops (the device's dense peak at the precision used, e.g.
// 989 for bf16 on an H100 SXM) it also prints the model FLOPs utilisation.
//
// Model FLOPs per token follow PaLM (Chowdhery et al. 2022, appendix B):
// 6 N + 12 L C T, where N counts every parameter that takes part in a matmul
// (the tied embedding once, as the LM head; not the position table, not an
// untied model's input embedding, which is a lookup) and the
// second term is attention's scores and weighted sum, forward and backward,
// counted for the full T x T matrix as the convention does (causal masking
// does about half of that work).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_compute.hpp"
#include "bench_flags.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/models/llama/llama_architecture.hpp"
#include "dfm/core/train/optimizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dfm::bench::flag;
using dfm::bench::float_flag;
using dfm::bench::median;
using dfm::bench::text_flag;

// GFLOP/s of the backend's matmul on a linear layer's forward GEMM of the
// model's own size, with the model's operand dtypes (activations in the
// backend's activation dtype, fp32 weights): the median over 7 timings of
// 10 back-to-back GEMMs, so that the wait for the device is paid once per 10.
double gemm_gflops(dfm::ComputeBackend& backend, int64_t m, int64_t n, int64_t k) {
  constexpr int kGemmsPerTiming = 10;
  dfm::ActivationBuffer a(backend, m * k), c(backend, m * n);
  dfm::DeviceBuffer<float> b(backend, k * n);
  backend.fill_activations(a.data(), 0.5f, m * k);
  backend.fill(b.data(), 0.25f, k * n);
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.alpha = 1;
  d.a = a.data();
  d.lda = k;
  d.b = b.data();
  d.ldb = n;
  d.c = c.data();
  d.ldc = n;
  d.batch = 1;
  d.a_dtype = d.c_dtype = backend.activation_dtype();
  d.b_dtype = DFM_DTYPE_FP32;
  backend.check(backend.table().matmul(backend.ctx(), &d), "matmul");  // warm-up: the library picks its kernel
  backend.synchronize();
  std::vector<double> seconds;
  for (int r = 0; r < 7; ++r) {
    const auto t0 = Clock::now();
    for (int g = 0; g < kGemmsPerTiming; ++g) backend.check(backend.table().matmul(backend.ctx(), &d), "matmul");
    backend.synchronize();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / kGemmsPerTiming);
  }
  return 2.0 * static_cast<double>(m * n * k) / median(seconds) / 1e9;
}

// The model of the flags and the hidden width of its MLP (the GEMM the rate is measured on).
struct BenchModel {
  std::shared_ptr<const dfm::ModelSpec> spec;
  int64_t mlp_width;
};

BenchModel bench_model(int argc, char** argv, const dfm::ModelDims& d) {
  const std::string arch = text_flag(argc, argv, "--arch", "gpt");
  if (arch != "gpt" && arch != "llama") throw std::invalid_argument("--arch " + arch + ": expected gpt or llama");
  if (arch == "llama") {
    dfm::LlamaShape s;
    s.n_layer = d.n_layer;
    s.d_model = d.d_model;
    s.n_head = d.n_head;
    s.n_kv_head = flag(argc, argv, "--kv-heads", 4);
    s.ffn_dim = flag(argc, argv, "--ffn", dfm::llama_default_ffn_dim(s.d_model));
    s.vocab_size = flag(argc, argv, "--vocab", 32000);
    s.seq_len = d.seq_len;
    return {dfm::llama_spec(s), s.ffn_dim};
  }
  dfm::GptShape s;
  s.n_layer = d.n_layer;
  s.d_model = d.d_model;
  s.n_head = d.n_head;
  s.vocab_size = flag(argc, argv, "--vocab", 50257);
  s.seq_len = d.seq_len;
  return {dfm::gpt2_spec(s), 4 * s.d_model};
}

int run(int argc, char** argv) {
  dfm::ModelDims flags;
  flags.n_layer = flag(argc, argv, "--layers", 12);
  flags.d_model = flag(argc, argv, "--d-model", 768);
  flags.n_head = flag(argc, argv, "--heads", 12);
  flags.seq_len = flag(argc, argv, "--seq", 256);
  const BenchModel bench = bench_model(argc, argv, flags);
  const dfm::ModelDims shape = bench.spec->dims();
  const int64_t batch = flag(argc, argv, "--batch", 4), steps = flag(argc, argv, "--steps", 6);

  dfm::bench::BenchCompute compute(argc, argv);
  dfm::ComputeBackend& backend = compute.backend();
  const auto& spec = bench.spec;
  const dfm::JobRuntime runtime = dfm::JobRuntime::single_process(backend, shape.n_layer);
  dfm::ModelParams params(backend, spec->params(0, 1), static_cast<int32_t>(shape.n_layer + 1), runtime.placement());
  params.initialise(1);
  const auto model = spec->build(backend, params, runtime.roles, batch, dfm::ModelLayout::whole(shape.n_layer));
  dfm::AdamW adamw(backend, {});

  const int64_t rows = batch * shape.seq_len;
  std::vector<int32_t> tokens(static_cast<size_t>(rows)), positions(tokens.size());
  for (int64_t i = 0; i < rows; ++i) {
    tokens[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % shape.vocab_size);
    positions[static_cast<size_t>(i)] = static_cast<int32_t>(i % shape.seq_len);
  }
  dfm::DeviceBuffer<int32_t> d_tokens(backend, rows), d_targets(backend, rows), d_positions(backend, rows);
  d_tokens.upload(tokens);
  std::rotate(tokens.begin(), tokens.begin() + 1, tokens.end());
  d_targets.upload(tokens);
  d_positions.upload(positions);
  const dfm::MicroBatch in{batch, shape.seq_len, d_tokens.data(), d_positions.data(), d_targets.data()};

  std::vector<double> step_seconds, issue_seconds;
  for (int64_t s = 0; s < steps + 1; ++s) {  // step 0 warms caches and the thread pool
    const auto t0 = Clock::now();
    params.zero_grad_shards();
    const dfm_step_info info{sizeof(dfm_step_info), s, 0, 1};
    model->forward_chunk(0, 0, in, &info);
    model->chunk_loss(0, 0, in, 1.0f / static_cast<float>(rows));
    model->backward_chunk(0, 0, in, &info);
    if (s > 0) issue_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    const double norm = std::sqrt(adamw.local_grad_sum_squares(params));
    adamw.step(params, 1e-4, s + 1, dfm::clip_coefficient(norm, 1.0));
    backend.synchronize();
    if (s > 0) step_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }

  const double flops_per_token = dfm::training_flops_per_token(*bench.spec);
  const double step = median(step_seconds);
  const double tokens_per_s = static_cast<double>(rows) / step;
  const double model_gflops = tokens_per_s * flops_per_token / 1e9;
  const double gemm = gemm_gflops(backend, rows, bench.mlp_width, shape.d_model);
  std::printf("backend: %s, %s, activations in %s\n", compute.name().c_str(), compute.precision().c_str(),
              compute.activations().c_str());
  std::printf("model: %s, batch %lld (%.1fM parameters)\n", spec->describe().c_str(), static_cast<long long>(batch),
              static_cast<double>(params.total_count()) / 1e6);
  std::printf("activation memory: %.1f MiB\n", static_cast<double>(model->activation_bytes()) / (1 << 20));
  std::printf("step time (median of %lld): %.1f ms\n", static_cast<long long>(steps), step * 1e3);
  // A GPU backend returns from its calls before the kernels ran: when issuing
  // the forward and backward takes nearly the whole step, the host is the
  // bottleneck; a host backend computes as it issues, so there the two meet.
  std::printf("host time to issue forward + loss + backward: %.1f ms (median)\n", median(issue_seconds) * 1e3);
  std::printf("tokens/s: %.0f\n", tokens_per_s);
  std::printf("model FLOP/s: %.1f GFLOP/s (%.2f GFLOP per token)\n", model_gflops, flops_per_token / 1e9);
  std::printf("GEMM rate (%lld x %lld x %lld, same run): %.1f GFLOP/s\n", static_cast<long long>(rows),
              static_cast<long long>(bench.mlp_width), static_cast<long long>(shape.d_model), gemm);
  std::printf("end-to-end fraction of the GEMM rate: %.1f%%\n", 100.0 * model_gflops / gemm);
  if (const double peak = float_flag(argc, argv, "--peak-tflops", 0.0); peak > 0)
    std::printf("MFU: %.1f%% of %.0f TFLOP/s\n", model_gflops / (peak * 1e3) * 100.0, peak);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return dfm::bench::main_reporting_errors("bench_train_throughput", run, argc, argv); }
