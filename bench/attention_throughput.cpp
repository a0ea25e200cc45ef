// Causal attention forward and backward throughput of a compute backend:
// one head_dim, one sequence length, the backend's blockwise kernel called
// with every key at once (plain causal attention).
//
//   bench_attention_throughput [--compute cpu --precision fp32 --seq 4096 --heads 16
//                               --head-dim 64 --batch 1 --reps 5 --threads 0]
//
// FLOPs count only the unmasked half of the T x T scores (FlashAttention's
// convention, Dao 2023): forward 2 B H T^2 D (QK^T and PV), backward 2.5 times
// that (QK^T again, dV, dP, dQ and dK).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench_compute.hpp"
#include "bench_flags.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dfm::bench::flag;
using dfm::bench::median;
using dfm::bench::text_flag;

int run(int argc, char** argv) {
  const int64_t T = flag(argc, argv, "--seq", 4096), H = flag(argc, argv, "--heads", 16);
  const int64_t D = flag(argc, argv, "--head-dim", 64), B = flag(argc, argv, "--batch", 1);
  const int64_t reps = flag(argc, argv, "--reps", 5);

  dfm::bench::BenchCompute compute(argc, argv);
  dfm::ComputeBackend& backend = compute.backend();
  const dfm_compute_v1& k = backend.table();

  // Q, K, V read in place from a fused [B, T, 3, H, D] tensor, as the model does.
  const int64_t width = H * D, qkv_count = B * T * 3 * width, out_count = B * T * width;
  dfm::DeviceBuffer<float> qkv(backend, qkv_count), out(backend, out_count), lse(backend, B * H * T);
  dfm::DeviceBuffer<float> dout(backend, out_count), dqkv(backend, qkv_count);
  backend.fill(qkv.data(), 0.01f, qkv_count);
  backend.fill(dout.data(), 0.001f, out_count);
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = B;
  d.heads = H;
  d.head_dim = D;
  d.q_len = d.kv_len = T;
  d.q_token_stride = d.kv_token_stride = 3 * width;
  d.o_token_stride = width;
  d.causal = 1;
  d.scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* q = qkv.data();
  float* dq = dqkv.data();

  std::vector<double> forward, backward;
  for (int64_t r = 0; r < reps + 1; ++r) {  // the first warms up
    auto t0 = Clock::now();
    backend.check(k.attention_forward(backend.ctx(), &d, q, q + width, q + 2 * width, out.data(), lse.data(), 0),
                  "attention_forward");
    backend.synchronize();
    const double f = std::chrono::duration<double>(Clock::now() - t0).count();
    backend.fill(dq, 0.0f, qkv_count);
    backend.synchronize();
    t0 = Clock::now();
    backend.check(k.attention_backward(backend.ctx(), &d, q, q + width, q + 2 * width, out.data(), dout.data(),
                                       lse.data(), dq, dq + width, dq + 2 * width),
                  "attention_backward");
    backend.synchronize();
    const double b = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) {
      forward.push_back(f);
      backward.push_back(b);
    }
  }
  const double fwd_flops = 2.0 * static_cast<double>(B * H) * static_cast<double>(T) * static_cast<double>(T) *
                           static_cast<double>(D);
  const double f = median(forward), b = median(backward);
  std::printf("backend: %s, %s; batch %lld, heads %lld, head_dim %lld, seq %lld (causal)\n", compute.name().c_str(),
              compute.precision().c_str(), static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(D),
              static_cast<long long>(T));
  std::printf("forward: %.2f ms, %.2f TFLOP/s\n", f * 1e3, fwd_flops / f / 1e12);
  std::printf("backward: %.2f ms, %.2f TFLOP/s\n", b * 1e3, 2.5 * fwd_flops / b / 1e12);
  std::printf("forward+backward: %.2f TFLOP/s\n", 3.5 * fwd_flops / (f + b) / 1e12);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dfm::bench::main_reporting_errors("bench_attention_throughput", run, argc, argv);
}
