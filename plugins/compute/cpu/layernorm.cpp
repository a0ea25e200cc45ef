// LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm).
// Row statistics are summed in double: rows of thousands of floats lose
// several digits in a float sum.
#include <algorithm>
#include <cmath>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"

namespace dfm::cpu {
namespace {

// dweight and dbias sum over rows one block of this many columns per task, so
// the order of the sum never depends on the thread count.
constexpr int64_t kColumnBlock = 64;

}  // namespace

dfm_status layernorm_forward(void* ctx, float* out, float* mean, float* rstd, const float* in, const float* weight,
                             const float* bias, int64_t rows, int64_t dim, float eps) {
  return sdk::guard([&] {
    const Args args("layernorm_forward", ctx);
    sdk::validate_layernorm_forward(args, out, mean, rstd, in, weight, bias, rows, dim, eps);
    Fp32Staging staging(args);
    float* normed = staging.write(out, rows * dim);
    const float* input = staging.read(in, rows * dim);
#pragma omp parallel for num_threads(args.threads_for(rows* dim))
    for (int64_t r = 0; r < rows; ++r) {
      const float* __restrict x = input + r * dim;
      float* __restrict y = normed + r * dim;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < dim; ++j) sum += x[j];
      const float mu = static_cast<float>(sum / static_cast<double>(dim));
      double squares = 0.0;
#pragma omp simd reduction(+ : squares)
      for (int64_t j = 0; j < dim; ++j) {
        const double centred = static_cast<double>(x[j] - mu);
        squares += centred * centred;
      }
      const float rs = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(dim) + eps));
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) y[j] = (x[j] - mu) * rs * weight[j] + bias[j];
      mean[r] = mu;
      rstd[r] = rs;
    }
    staging.finish();
  });
}

// With x^ = (x - mean) rstd and g = dout * weight:
//   din = rstd (g - mean(g) - x^ mean(g x^)),  dweight = sum_r dout x^,  dbias = sum_r dout.
dfm_status layernorm_backward(void* ctx, float* din, float* dweight, float* dbias, const float* dout, const float* in,
                              const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("layernorm_backward", ctx);
    sdk::validate_layernorm_backward(args, din, dweight, dbias, dout, in, weight, mean, rstd, rows, dim);
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
      const float mu = mean[r];
      const float rs = rstd[r];
      double sum_g = 0.0;
      double sum_g_xhat = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
      for (int64_t j = 0; j < dim; ++j) {
        const float g = dy[j] * weight[j];
        sum_g += g;
        sum_g_xhat += static_cast<double>(g * ((x[j] - mu) * rs));
      }
      const float mean_g = static_cast<float>(sum_g / static_cast<double>(dim));
      const float mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(dim));
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) {
        const float xhat = (x[j] - mu) * rs;
        dx[j] += rs * (dy[j] * weight[j] - mean_g - xhat * mean_g_xhat);
      }
    }

    const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(threads)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t j0 = block * kColumnBlock;
      const int64_t width = std::min(kColumnBlock, dim - j0);
      double sum_w[kColumnBlock] = {};
      double sum_b[kColumnBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* __restrict x = input + r * dim + j0;
        const float* __restrict dy = doutput + r * dim + j0;
        const float mu = mean[r];
        const float rs = rstd[r];
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          sum_w[j] += dy[j] * ((x[j] - mu) * rs);
          sum_b[j] += dy[j];
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        dweight[j0 + j] += static_cast<float>(sum_w[j]);
        dbias[j0 + j] += static_cast<float>(sum_b[j]);
      }
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
