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

// One warp per (token, head) row of the result: the lanes weigh the row's
// two parts once (as exp(lse - merged lse)), merge its head_dim values (lane x
// takes x, x + 32, ...: coalesced), and lane 0 then writes the merged lse.
__global__ void merge_block_kernel(float* out, float* lse, const __nv_bfloat16* o, const float* block_lse,
                                   dfm_attention_desc d, bool accumulate) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t rows = d.batch * d.q_len * d.heads;
  for (int64_t r = global_thread() / kWarpSize; r < rows; r += grid_threads() / kWarpSize) {
    const int64_t token = r / d.heads, h = r % d.heads;  // token = b * q_len + t
    const int64_t b = token / d.q_len, t = token % d.q_len;
    float* target = out + token * d.o_token_stride + h * d.head_dim;
    const __nv_bfloat16* block = o + r * d.head_dim;
    float* row_lse = lse + (b * d.heads + h) * d.q_len + t;
    const float new_lse = block_lse[(b * d.heads + h) * d.q_len + t];
    const float old_lse = accumulate ? *row_lse : -INFINITY;  // -inf: nothing seen yet, take the block's
    const float merged = log_add_exp(old_lse, new_lse);
    const float keep = old_lse == -INFINITY ? 0.0f : expf(old_lse - merged), take = expf(new_lse - merged);
    for (int64_t x = lane; x < d.head_dim; x += kWarpSize)
      target[x] = (keep == 0.0f ? 0.0f : target[x] * keep) + __bfloat162float(block[x]) * take;
    __syncwarp();  // every lane has read old_lse
    if (lane == 0) *row_lse = merged;
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
  const int64_t rows = d.batch * d.q_len * d.heads;
  merge_block_kernel<<<grid_for(rows * kWarpSize, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
      out, lse, static_cast<const __nv_bfloat16*>(o), block_lse, d, accumulate);
  args.launched();
}

}  // namespace dfm::cuda
