// RMSNorm over the last dimension (Zhang & Sennrich 2019), the Llama family's
// norm, one warp per row as LayerNorm's kernels (layernorm.cu). The sum of
// squares is taken in double, as on the cpu backend. in, out, din and dout
// have the context's activation type T.
#include <cmath>

#include "activations.cuh"
#include "column_sums.cuh"

namespace dfm::cuda {
namespace {

constexpr int kRowsPerBlock = kBlockThreads / kWarpSize;

template <typename T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* in, const float* weight, int64_t rows,
                                       int64_t dim, float eps) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;  // the whole warp leaves together
  const T* x = in + r * dim;
  T* y = out + r * dim;
  double squares = 0.0;
  for (int64_t j = lane; j < dim; j += kWarpSize) {
    const double v = load(x + j);
    squares += v * v;
  }
  const float rs = static_cast<float>(1.0 / sqrt(warp_sum(squares) / static_cast<double>(dim) + eps));
  for (int64_t j = lane; j < dim; j += kWarpSize) store(y + j, load(x + j) * rs * weight[j]);
  if (lane == 0) rstd[r] = rs;
}

// With x^ = x rstd and g = dout * weight: din += rstd (g - x^ mean(g x^)).
template <typename T>
__global__ void rmsnorm_backward_input_kernel(T* din, const T* dout, const T* in, const float* weight,
                                              const float* rstd, int64_t rows, int64_t dim) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const T* x = in + r * dim;
  const T* dy = dout + r * dim;
  T* dx = din + r * dim;
  const float rs = rstd[r];
  double sum_g_xhat = 0.0;
  for (int64_t j = lane; j < dim; j += kWarpSize)
    sum_g_xhat += static_cast<double>(load(dy + j) * weight[j] * (load(x + j) * rs));
  const float mean_g_xhat = static_cast<float>(warp_sum(sum_g_xhat) / static_cast<double>(dim));
  for (int64_t j = lane; j < dim; j += kWarpSize)
    store(dx + j, load(dx + j) + rs * (load(dy + j) * weight[j] - load(x + j) * rs * mean_g_xhat));
}

// dweight = sum_r dout x^.
template <typename T>
struct WeightGradTerm {
  const T* dout;
  const T* in;
  const float* rstd;
  int64_t dim;
  __device__ double operator()(int64_t r, int64_t j) const {
    return load(dout + r * dim + j) * (load(in + r * dim + j) * rstd[r]);
  }
};

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

dfm_status rmsnorm_forward(void* ctx, float* out, float* rstd, const float* in, const float* weight, int64_t rows,
                           int64_t dim, float eps) {
  return sdk::guard([&] {
    const Args args("rmsnorm_forward", ctx);
    sdk::validate_rmsnorm_forward(args, out, rstd, in, weight, rows, dim, eps);
    if (rows == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      rmsnorm_forward_kernel<<<row_blocks(rows), kBlockThreads, 0, args.stream()>>>(as<T>(out), rstd, as<T>(in),
                                                                                    weight, rows, dim, eps);
    });
    args.launched();
  });
}

dfm_status rmsnorm_backward(void* ctx, float* din, float* dweight, const float* dout, const float* in,
                            const float* weight, const float* rstd, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("rmsnorm_backward", ctx);
    sdk::validate_rmsnorm_backward(args, din, dweight, dout, in, weight, rstd, rows, dim);
    if (rows * dim == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      rmsnorm_backward_input_kernel<<<row_blocks(rows), kBlockThreads, 0, args.stream()>>>(
          as<T>(din), as<T>(dout), as<T>(in), weight, rstd, rows, dim);
      args.launched();
      add_column_sums(args, dweight, rows, dim, WeightGradTerm<T>{as<T>(dout), as<T>(in), rstd, dim});
    });
  });
}

}  // namespace dfm::cuda
