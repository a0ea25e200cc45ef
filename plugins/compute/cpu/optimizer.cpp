// Optimizer kernels: the AdamW step and the sum of squares behind the global
// gradient norm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_backend.hpp"

namespace dfm::cpu {
namespace {

// sum_squares sums fixed chunks of this many elements, then the chunks' sums
// in chunk order: the result never depends on the thread count.
constexpr int64_t kSumChunk = 1 << 14;

// One chunk's sum in kLanes running sums (element i into lane i mod kLanes),
// added pairwise at the end: independent chains the compiler keeps in vector
// registers of any width, and the same result on every ISA. Each square is
// exact in double (a float's 24-bit mantissa squared fits in 53 bits).
constexpr int64_t kLanes = 8;

DFM_CPU_MULTIVERSION
double chunk_sum_squares(const float* x, int64_t count) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (int64_t j = 0; i < count; ++i, ++j) lane[j] += static_cast<double>(x[i]) * x[i];
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t j = 0; j < width; ++j) lane[j] += lane[j + width];
  return lane[0];
}

}  // namespace

// torch.optim.AdamW: decoupled weight decay first, then the bias-corrected
// Adam step, exactly in the order compute.h writes it (and PyTorch's
// sqrt(v) / sqrt(1 - beta2^step) for sqrt(v / (1 - beta2^step))).
dfm_status adamw_update(void* ctx, float* param, const float* grad, float* m, float* v, int64_t count, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale) {
  return sdk::guard([&] {
    const Args args("adamw_update", ctx);
    sdk::validate_adamw_update(args, param, grad, m, v, count, beta1, beta2, step);
    const float decay = 1.0f - lr * weight_decay;
    const float correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    const float correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
    const float step_size = lr / correction1;
    const float sqrt_correction2 = std::sqrt(correction2);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) {
      const float g = grad[i] * grad_scale;
      const float mi = beta1 * m[i] + (1.0f - beta1) * g;
      const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - step_size * mi / (std::sqrt(vi) / sqrt_correction2 + eps);
    }
  });
}

dfm_status sum_squares(void* ctx, const float* x, int64_t count, float* out, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("sum_squares", ctx);
    sdk::validate_sum_squares(args, x, count, out);
    const int64_t chunks = (count + kSumChunk - 1) / kSumChunk;
    std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for num_threads(args.threads_for(count))
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = c * kSumChunk;
      partial[static_cast<size_t>(c)] = chunk_sum_squares(x + begin, std::min(kSumChunk, count - begin));
    }
    double total = accumulate ? static_cast<double>(*out) : 0.0;
    for (const double s : partial) total += s;
    *out = static_cast<float>(total);
  });
}

}  // namespace dfm::cpu
