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

void check_rows(const Args& args, int64_t rows, int64_t dim) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
}

}  // namespace

dfm_status add(void* ctx, float* out, const float* a, const float* b, int64_t count) {
  return sdk::guard([&] {
    const Args args("add", ctx);
    args.non_negative("count", count);
    args.pointer("out", out, count);
    args.pointer("a", a, count);
    args.pointer("b", b, count);
    if (count == 0) return;
    add_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, a, b, count);
    args.launched();
  });
}

dfm_status scale(void* ctx, float* x, float alpha, int64_t count) {
  return sdk::guard([&] {
    const Args args("scale", ctx);
    args.non_negative("count", count);
    args.pointer("x", x, count);
    if (count == 0) return;
    scale_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(x, alpha, count);
    args.launched();
  });
}

dfm_status bias_add(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_add", ctx);
    check_rows(args, rows, dim);
    args.pointer("out", out, rows * dim);
    args.pointer("bias", bias, rows > 0 ? dim : 0);
    if (rows * dim == 0) return;
    bias_add_kernel<<<grid_for(rows * dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, bias, rows, dim);
    args.launched();
  });
}

dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim) {
  return sdk::guard([&] {
    const Args args("bias_backward", ctx);
    check_rows(args, rows, dim);
    args.pointer("dbias", dbias, dim);
    args.pointer("dout", dout, rows * dim);
    add_column_sums(args, dbias, rows, dim, MatrixElement{dout, dim});
  });
}

dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_forward", ctx);
    args.non_negative("count", count);
    args.pointer("out", out, count);
    args.pointer("in", in, count);
    if (count == 0) return;
    gelu_forward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, in, count);
    args.launched();
  });
}

dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count) {
  return sdk::guard([&] {
    const Args args("gelu_backward", ctx);
    args.non_negative("count", count);
    args.pointer("din", din, count);
    args.pointer("in", in, count);
    args.pointer("dout", dout, count);
    if (count == 0) return;
    gelu_backward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(din, in, dout, count);
    args.launched();
  });
}

}  // namespace dfm::cuda
