// Elementwise kernels: residual add, scale, bias, GELU. Parallel over elements
// (or rows), contiguous inner loops that the compiler vectorises. [act]
// arguments are seen through fp32 views (fp32_staging.hpp).
#include <algorithm>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

// bias_backward sums over rows one block of this many columns per task, so the
// sum's order never depends on the thread count (columns are independent).
constexpr int64_t kColumnBlock = 64;

}  // namespace

dfm_status add(void* ctx, float* out, const float* a, const float* b, int64_t count) {
  return sdk::guard([&] {
    const Args args("add", ctx);
    sdk::validate_add(args, out, a, b, count);
    // out may alias a or b: element i reads only index i before writing it.
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
  });
}

dfm_status scale(void* ctx, float* x, float alpha, int64_t count) {
  return sdk::guard([&] {
    const Args args("scale", ctx);
    sdk::validate_scale(args, x, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) x[i] *= alpha;
  });
}

dfm_status bias_add(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_add", ctx);
    sdk::validate_bias_add(args, out, bias, rows, dim);
    Fp32Staging staging(args);
    float* sum = staging.update(out, rows * dim);
#pragma omp parallel for num_threads(args.threads_for(rows* dim))
    for (int64_t r = 0; r < rows; ++r) {
      float* __restrict row = sum + r * dim;
      const float* __restrict b = bias;
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) row[j] += b[j];
    }
    staging.finish();
  });
}

dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_backward", ctx);
    sdk::validate_bias_backward(args, dbias, dout, rows, dim);
    Fp32Staging staging(args);
    const float* grad = staging.read(dout, rows * dim);
    const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(args.threads_for(rows* dim))
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t j0 = block * kColumnBlock;
      const int64_t width = std::min(kColumnBlock, dim - j0);
      double sum[kColumnBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* __restrict row = grad + r * dim + j0;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) sum[j] += row[j];
      }
      for (int64_t j = 0; j < width; ++j) dbias[j0 + j] += static_cast<float>(sum[j]);
    }
  });
}

dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_forward", ctx);
    sdk::validate_gelu_forward(args, out, in, count);
    Fp32Staging staging(args);
    float* y = staging.write(out, count);
    const float* x = staging.read(in, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) y[i] = gelu_vec(x[i]);
    staging.finish();
  });
}

dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_backward", ctx);
    sdk::validate_gelu_backward(args, din, in, dout, count);
    Fp32Staging staging(args);
    float* dx = staging.write(din, count);
    const float* x = staging.read(in, count);
    const float* dy = staging.read(dout, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) dx[i] = dy[i] * gelu_grad_vec(x[i]);
    staging.finish();
  });
}

}  // namespace dfm::cpu
