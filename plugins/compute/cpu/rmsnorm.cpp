// RMSNorm over the last dimension (Zhang & Sennrich 2019), the Llama
// family's norm: no mean, no bias. The sum of squares is taken in double, as
// LayerNorm's statistics are (layernorm.cpp): rows of thousands of floats
// lose digits in a float sum.
#include <algorithm>
#include <cmath>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"

namespace dfm::cpu {
namespace {

// dweight sums over rows one block of this many columns per task, so the order
// of the sum never depends on the thread count.
constexpr int64_t kColumnBlock = 64;

}  // namespace

dfm_status rmsnorm_forward(void* ctx, float* out, float* rstd, const float* in, const float* weight, int64_t rows,
                           int64_t dim, float eps) {
  return sdk::guard([&] {
    const Args args("rmsnorm_forward", ctx);
    sdk::validate_rmsnorm_forward(args, out, rstd, in, weight, rows, dim, eps);
    Fp32Staging staging(args);
    float* normed = staging.write(out, rows * dim);
    const float* input = staging.read(in, rows * dim);
#pragma omp parallel for num_threads(args.threads_for(rows* dim))
    for (int64_t r = 0; r < rows; ++r) {
      const float* __restrict x = input + r * dim;
      float* __restrict y = normed + r * dim;
      double squares = 0.0;
#pragma omp simd reduction(+ : squares)
      for (int64_t j = 0; j < dim; ++j) squares += static_cast<double>(x[j]) * x[j];
      const float rs = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(dim) + eps));
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) y[j] = x[j] * rs * weight[j];
      rstd[r] = rs;
    }
    staging.finish();
  });
}

// With x^ = x rstd and g = dout * weight:
//   din = rstd (g - x^ mean(g x^)),  dweight = sum_r dout x^.
dfm_status rmsnorm_backward(void* ctx, float* din, float* dweight, const float* dout, const float* in,
                            const float* weight, const float* rstd, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("rmsnorm_backward", ctx);
    sdk::validate_rmsnorm_backward(args, din, dweight, dout, in, weight, rstd, rows, dim);
    Fp32Staging staging(args);
    float* dinput = staging.update(din, rows * dim);
    const float* doutput = staging.read(dout, rows * dim);
    const float* input = staging.read(in, rows * dim);
    const int threads = args.threads_for(rows * dim);

#pragma omp parallel for num_threads(threads)
    for (int64_t r = 0; r < rows; ++r) {
      const float* __restrict x = input + r * dim;
      const float* __restrict dy = doutput + r * dim;
      float* __restrict dx = dinput + r * dim;
      const float rs = rstd[r];
      double sum_g_xhat = 0.0;
#pragma omp simd reduction(+ : sum_g_xhat)
      for (int64_t j = 0; j < dim; ++j) sum_g_xhat += static_cast<double>(dy[j] * weight[j] * (x[j] * rs));
      const float mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(dim));
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) dx[j] += rs * (dy[j] * weight[j] - x[j] * rs * mean_g_xhat);
    }

    const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(threads)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t j0 = block * kColumnBlock;
      const int64_t width = std::min(kColumnBlock, dim - j0);
      double sum_w[kColumnBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* __restrict x = input + r * dim + j0;
        const float* __restrict dy = doutput + r * dim + j0;
        const float rs = rstd[r];
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) sum_w[j] += dy[j] * (x[j] * rs);
      }
      for (int64_t j = 0; j < width; ++j) dweight[j0 + j] += static_cast<float>(sum_w[j]);
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
