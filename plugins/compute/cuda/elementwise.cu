// Elementwise kernels: residual add, scale, bias, GELU. Grid-stride loops;
// element i reads only index i before writing it, so outputs may alias inputs.
#include "column_sums.cuh"
#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* x, float alpha, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) x[i] *= alpha;
}

__global__ void bias_add_kernel(float* out, const float* bias, int64_t rows, int64_t dim) {
  const int64_t count = rows * dim;
  for (int64_t i = global_thread(); i < count; i += grid_threads()) out[i] += bias[i % dim];
}

__global__ void gelu_forward_kernel(float* out, const float* in, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) out[i] = gelu(in[i]);
}

__global__ void gelu_backward_kernel(float* din, const float* in, const float* dout, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) din[i] = dout[i] * gelu_grad(in[i]);
}

}  // namespace

dfm_status add(void* ctx, float* out, const float* a, const float* b, int64_t count) {
  return sdk::guard([&] {
    const Args args("add", ctx);
    sdk::validate_add(args, out, a, b, count);
    if (count == 0) return;
    add_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, a, b, count);
    args.launched();
  });
}

dfm_status scale(void* ctx, float* x, float alpha, int64_t count) {
  return sdk::guard([&] {
    const Args args("scale", ctx);
    sdk::validate_scale(args, x, count);
    if (count == 0) return;
    scale_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(x, alpha, count);
    args.launched();
  });
}

dfm_status bias_add(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_add", ctx);
    sdk::validate_bias_add(args, out, bias, rows, dim);
    if (rows * dim == 0) return;
    bias_add_kernel<<<grid_for(rows * dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, bias, rows, dim);
    args.launched();
  });
}

dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_backward", ctx);
    sdk::validate_bias_backward(args, dbias, dout, rows, dim);
    add_column_sums(args, dbias, rows, dim, MatrixElement{dout, dim});
  });
}

dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_forward", ctx);
    sdk::validate_gelu_forward(args, out, in, count);
    if (count == 0) return;
    gelu_forward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, in, count);
    args.launched();
  });
}

dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_backward", ctx);
    sdk::validate_gelu_backward(args, din, in, dout, count);
    if (count == 0) return;
    gelu_backward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(din, in, dout, count);
    args.launched();
  });
}

}  // namespace dfm::cuda
