// LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm),
// one warp per row. Row statistics are summed in double as on the cpu
// backend: rows of thousands of floats lose several digits in a float sum.
// in, out, din and dout have the context's activation type T.
#include <cmath>

#include "activations.cuh"
#include "column_sums.cuh"

namespace dfm::cuda {
namespace {

constexpr int kRowsPerBlock = kBlockThreads / kWarpSize;

template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* in, const float* weight,
                                         const float* bias, int64_t rows, int64_t dim, float eps) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;  // the whole warp leaves together
  const T* x = in + r * dim;
  T* y = out + r * dim;
  double sum = 0.0;
  for (int64_t j = lane; j < dim; j += kWarpSize) sum += load(x + j);
  const float mu = static_cast<float>(warp_sum(sum) / static_cast<double>(dim));
  double squares = 0.0;
  for (int64_t j = lane; j < dim; j += kWarpSize) {
    const double centred = static_cast<double>(load(x + j) - mu);
    squares += centred * centred;
  }
  const float rs = static_cast<float>(1.0 / sqrt(warp_sum(squares) / static_cast<double>(dim) + eps));
  for (int64_t j = lane; j < dim; j += kWarpSize) store(y + j, (load(x + j) - mu) * rs * weight[j] + bias[j]);
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// With x^ = (x - mean) rstd and g = dout * weight:
//   din += rstd (g - mean(g) - x^ mean(g x^)).
template <typename T>
__global__ void layernorm_backward_input_kernel(T* din, const T* dout, const T* in, const float* weight,
                                                const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const T* x = in + r * dim;
  const T* dy = dout + r * dim;
  T* dx = din + r * dim;
  const float mu = mean[r];
  const float rs = rstd[r];
  double sum_g = 0.0;
  double sum_g_xhat = 0.0;
  for (int64_t j = lane; j < dim; j += kWarpSize) {
    const float g = load(dy + j) * weight[j];
    sum_g += g;
    sum_g_xhat += static_cast<double>(g * ((load(x + j) - mu) * rs));
  }
  const float mean_g = static_cast<float>(warp_sum(sum_g) / static_cast<double>(dim));
  const float mean_g_xhat = static_cast<float>(warp_sum(sum_g_xhat) / static_cast<double>(dim));
  for (int64_t j = lane; j < dim; j += kWarpSize) {
    const float xhat = (load(x + j) - mu) * rs;
    store(dx + j, load(dx + j) + rs * (load(dy + j) * weight[j] - mean_g - xhat * mean_g_xhat));
  }
}

// dweight = sum_r dout x^ (dbias = sum_r dout is a plain column sum).
template <typename T>
struct WeightGradTerm {
  const T* dout;
  const T* in;
  const float* mean;
  const float* rstd;
  int64_t dim;
  __device__ double operator()(int64_t r, int64_t j) const {
    return load(dout + r * dim + j) * ((load(in + r * dim + j) - mean[r]) * rstd[r]);
  }
};

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

dfm_status layernorm_forward(void* ctx, float* out, float* mean, float* rstd, const float* in, const float* weight,
                             const float* bias, int64_t rows, int64_t dim, float eps) {
  return sdk::guard([&] {
    const Args args("layernorm_forward", ctx);
    sdk::validate_layernorm_forward(args, out, mean, rstd, in, weight, bias, rows, dim, eps);
    if (rows == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      layernorm_forward_kernel<<<row_blocks(rows), kBlockThreads, 0, args.stream()>>>(as<T>(out), mean, rstd, as<T>(in),
                                                                                      weight, bias, rows, dim, eps);
    });
    args.launched();
  });
}

dfm_status layernorm_backward(void* ctx, float* din, float* dweight, float* dbias, const float* dout, const float* in,
                              const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("layernorm_backward", ctx);
    sdk::validate_layernorm_backward(args, din, dweight, dbias, dout, in, weight, mean, rstd, rows, dim);
    if (rows * dim == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      layernorm_backward_input_kernel<<<row_blocks(rows), kBlockThreads, 0, args.stream()>>>(
          as<T>(din), as<T>(dout), as<T>(in), weight, mean, rstd, rows, dim);
      args.launched();
      add_column_sums(args, dweight, rows, dim, WeightGradTerm<T>{as<T>(dout), as<T>(in), mean, rstd, dim});
      add_column_sums(args, dbias, rows, dim, MatrixElement<T>{as<T>(dout), dim});
    });
  });
}

}  // namespace dfm::cuda
