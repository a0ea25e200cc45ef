#include <cuda_bf16.h>

#include "bf16_attention_io.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

__global__ void pack_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t width,
                                 int64_t token_stride) {
  for (int64_t e = global_thread(); e < rows * width; e += grid_threads())
    dst[e] = __float2bfloat16_rn(src[(e / width) * token_stride + e % width]);
}

__global__ void add_bf16_kernel(float* dst, const __nv_bfloat16* src, int64_t rows, int64_t width,
                                int64_t token_stride) {
  for (int64_t e = global_thread(); e < rows * width; e += grid_threads())
    dst[(e / width) * token_stride + e % width] += __bfloat162float(src[e]);
}

// log(exp(old) + exp(block)) without overflow; old = -inf (nothing seen yet) gives block.
__device__ inline float log_add_exp(float old, float block) {
  return old == -INFINITY ? block : fmaxf(old, block) + log1pf(expf(-fabsf(old - block)));
}

// out (token stride o_ts) from the block's o, weighted by exp(lse - merged lse).
// Reads lse and block_lse only: merge_lse_kernel updates lse afterwards.
__global__ void merge_out_kernel(float* out, const float* lse, const __nv_bfloat16* o, const float* block_lse,
                                 dfm_attention_desc d, bool accumulate) {
  const int64_t width = d.heads * d.head_dim;
  const int64_t rows = d.batch * d.q_len;
  for (int64_t e = global_thread(); e < rows * width; e += grid_threads()) {
    const int64_t row = e / width, col = e % width;
    const int64_t b = row / d.q_len, t = row % d.q_len, h = col / d.head_dim;
    float* target = out + row * d.o_token_stride + col;
    const float block = __bfloat162float(o[e]);
    if (!accumulate) {
      *target = block;
      continue;
    }
    const float old_lse = lse[(b * d.heads + h) * d.q_len + t];
    const float new_lse = block_lse[(b * d.heads + h) * d.q_len + t];
    const float merged = log_add_exp(old_lse, new_lse);
    *target = (old_lse == -INFINITY ? 0.0f : *target * expf(old_lse - merged)) + block * expf(new_lse - merged);
  }
}

__global__ void merge_lse_kernel(float* lse, const float* block_lse, int64_t count, bool accumulate) {
  for (int64_t e = global_thread(); e < count; e += grid_threads()) {
    lse[e] = accumulate ? log_add_exp(lse[e], block_lse[e]) : block_lse[e];
  }
}

}  // namespace

void pack_bf16(const Args& args, void* dst, const float* src, int64_t rows, int64_t width, int64_t token_stride) {
  pack_bf16_kernel<<<grid_for(rows * width, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
      static_cast<__nv_bfloat16*>(dst), src, rows, width, token_stride);
  args.launched();
}

void add_bf16(const Args& args, float* dst, const void* src, int64_t rows, int64_t width, int64_t token_stride) {
  add_bf16_kernel<<<grid_for(rows * width, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
      dst, static_cast<const __nv_bfloat16*>(src), rows, width, token_stride);
  args.launched();
}

void merge_block_result(const Args& args, const dfm_attention_desc& d, float* out, float* lse, const void* o,
                        const float* block_lse, bool accumulate) {
  const int64_t elements = d.batch * d.q_len * d.heads * d.head_dim;
  merge_out_kernel<<<grid_for(elements, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
      out, lse, static_cast<const __nv_bfloat16*>(o), block_lse, d, accumulate);
  args.launched();
  const int64_t rows = d.batch * d.heads * d.q_len;
  merge_lse_kernel<<<grid_for(rows, kBlockThreads), kBlockThreads, 0, args.stream()>>>(lse, block_lse, rows,
                                                                                       accumulate);
  args.launched();
}

}  // namespace dfm::cuda
