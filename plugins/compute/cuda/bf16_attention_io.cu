#include "activations.cuh"
#include "bf16_attention_io.hpp"

namespace dfm::cuda {
namespace {

template <typename T>
__global__ void pack_bf16_kernel(bf16* dst, const T* src, int64_t rows, int64_t width, int64_t token_stride) {
  for (int64_t e = global_thread(); e < rows * width; e += grid_threads())
    store(dst + e, load(src + (e / width) * token_stride + e % width));
}

template <typename T>
__global__ void add_bf16_kernel(T* dst, const bf16* src, int64_t rows, int64_t width, int64_t token_stride) {
  for (int64_t e = global_thread(); e < rows * width; e += grid_threads()) {
    T* target = dst + (e / width) * token_stride + e % width;
    store(target, load(target) + load(src + e));
  }
}

// log(exp(old) + exp(block)) without overflow; old = -inf (nothing seen yet) gives block.
__device__ inline float log_add_exp(float old, float block) {
  return old == -INFINITY ? block : fmaxf(old, block) + log1pf(expf(-fabsf(old - block)));
}

// One warp per (token, head) row of the result: the lanes weigh the row's
// two parts once (as exp(lse - merged lse)), merge its head_dim values (lane x
// takes x, x + 32, ...: coalesced), and lane 0 then writes the merged lse.
template <typename T>
__global__ void merge_block_kernel(T* out, float* lse, const bf16* o, const float* block_lse, dfm_attention_desc d,
                                   bool accumulate) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t rows = d.batch * d.q_len * d.heads;
  for (int64_t r = global_thread() / kWarpSize; r < rows; r += grid_threads() / kWarpSize) {
    const int64_t token = r / d.heads, h = r % d.heads;  // token = b * q_len + t
    const int64_t b = token / d.q_len, t = token % d.q_len;
    T* target = out + token * d.o_token_stride + h * d.head_dim;
    const bf16* block = o + r * d.head_dim;
    float* row_lse = lse + (b * d.heads + h) * d.q_len + t;
    const float new_lse = block_lse[(b * d.heads + h) * d.q_len + t];
    const float old_lse = accumulate ? *row_lse : -INFINITY;  // -inf: nothing seen yet, take the block's
    const float merged = log_add_exp(old_lse, new_lse);
    const float keep = old_lse == -INFINITY ? 0.0f : expf(old_lse - merged), take = expf(new_lse - merged);
    for (int64_t x = lane; x < d.head_dim; x += kWarpSize)
      store(target + x, (keep == 0.0f ? 0.0f : load(target + x) * keep) + load(block + x) * take);
    __syncwarp();  // every lane has read old_lse
    if (lane == 0) *row_lse = merged;
  }
}

}  // namespace

void pack_bf16(const Args& args, void* dst, const float* src, int64_t rows, int64_t width, int64_t token_stride) {
  with_activation_type(args, [&](auto t) {
    using T = decltype(t);
    pack_bf16_kernel<<<grid_for(rows * width, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
        static_cast<bf16*>(dst), as<T>(src), rows, width, token_stride);
  });
  args.launched();
}

void add_bf16(const Args& args, float* dst, const void* src, int64_t rows, int64_t width, int64_t token_stride) {
  with_activation_type(args, [&](auto t) {
    using T = decltype(t);
    add_bf16_kernel<<<grid_for(rows * width, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
        as<T>(dst), static_cast<const bf16*>(src), rows, width, token_stride);
  });
  args.launched();
}

void merge_block_result(const Args& args, const dfm_attention_desc& d, float* out, float* lse, const void* o,
                        const float* block_lse, bool accumulate) {
  const int64_t rows = d.batch * d.q_len * d.heads;
  with_activation_type(args, [&](auto t) {
    using T = decltype(t);
    merge_block_kernel<<<grid_for(rows * kWarpSize, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
        as<T>(out), lse, static_cast<const bf16*>(o), block_lse, d, accumulate);
  });
  args.launched();
}

}  // namespace dfm::cuda
