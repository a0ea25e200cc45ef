// Elementwise kernels: residual add, scale, bias, GELU. Grid-stride loops;
// element i reads only index i before writing it, so outputs may alias inputs.
// The [act] tensors (bias and GELU kernels) have the context's activation type T.
#include "activations.cuh"
#include "column_sums.cuh"

namespace dfm::cuda {
namespace {

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* x, float alpha, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) x[i] *= alpha;
}

template <typename T>
__global__ void bias_add_kernel(T* out, const float* bias, int64_t rows, int64_t dim) {
  const int64_t count = rows * dim;
  for (int64_t i = global_thread(); i < count; i += grid_threads()) store(out + i, load(out + i) + bias[i % dim]);
}

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* in, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) store(out + i, gelu(load(in + i)));
}

template <typename T>
__global__ void gelu_backward_kernel(T* din, const T* in, const T* dout, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads())
    store(din + i, load(dout + i) * gelu_grad(load(in + i)));
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
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      bias_add_kernel<<<grid_for(rows * dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(as<T>(out), bias, rows,
                                                                                                dim);
    });
    args.launched();
  });
}

dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_backward", ctx);
    sdk::validate_bias_backward(args, dbias, dout, rows, dim);
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      add_column_sums(args, dbias, rows, dim, MatrixElement<T>{as<T>(dout), dim});
    });
  });
}

dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_forward", ctx);
    sdk::validate_gelu_forward(args, out, in, count);
    if (count == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      gelu_forward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(as<T>(out), as<T>(in),
                                                                                               count);
    });
    args.launched();
  });
}

dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_backward", ctx);
    sdk::validate_gelu_backward(args, din, in, dout, count);
    if (count == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      gelu_backward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(as<T>(din), as<T>(in),
                                                                                                as<T>(dout), count);
    });
    args.launched();
  });
}

}  // namespace dfm::cuda
