// Shared by attention_forward.cu and attention_backward.cu: the shape of one
// attention block, where each row lives, which keys a query sees, and
// the shared-memory tiles the kernels stream keys and queries through.
//
// The kernels are fp32 and simple rather than fast (with precision = "bf16"
// attention runs on cuDNN, cudnn_attention.hpp, and these serve what it
// cannot): a block of kAttentionWarps warps, key tiles of kKeyTile = 32 keys
// so that in the score phase lane j owns key j of the tile (scores, maxima and
// sums by warp shuffles), and in the accumulation phase lane d owns dimensions
// d, d + 32, ... of an output row.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_ATTENTION_CUH
#define DFM_PLUGINS_COMPUTE_CUDA_ATTENTION_CUH

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda_backend.hpp"
#include "device_math.cuh"
#include "staging.hpp"

namespace dfm::cuda {

constexpr int64_t kMaxHeadDim = 128;
constexpr int kKeyTile = kWarpSize;
constexpr int kAttentionWarps = 4;
constexpr int kAttentionThreads = kAttentionWarps * kWarpSize;

struct AttentionShape {
  int64_t batch, heads, head_dim, q_len, kv_len;
  int64_t kv_heads;  // grouped-query attention: query head h reads K/V head h / (heads / kv_heads)
  int64_t q_ts, kv_ts, o_ts;
  int64_t q_pos0, kv_pos0;
  int causal;
  float scale;

  // Offset of the head_dim values of token t, head h in batch element b.
  __host__ __device__ int64_t q_offset(int64_t b, int64_t t, int64_t h) const {
    return (b * q_len + t) * q_ts + h * head_dim;
  }
  // The K/V row of query head h: its group's K/V head.
  __host__ __device__ int64_t kv_offset(int64_t b, int64_t t, int64_t h) const {
    return kv_head_offset(b, t, h / (heads / kv_heads));
  }
  __host__ __device__ int64_t kv_head_offset(int64_t b, int64_t t, int64_t g) const {
    return (b * kv_len + t) * kv_ts + g * head_dim;
  }
  __host__ __device__ int64_t o_offset(int64_t b, int64_t t, int64_t h) const {
    return (b * q_len + t) * o_ts + h * head_dim;
  }
  __host__ __device__ int64_t lse_offset(int64_t b, int64_t h) const { return (b * heads + h) * q_len; }
  // Number of leading keys of the block that query i sees: with the causal
  // mask, keys at global positions <= the query's (q_pos0 + i).
  __host__ __device__ int64_t visible_keys(int64_t i) const {
    if (!causal) return kv_len;
    const int64_t seen = q_pos0 + i - kv_pos0 + 1;
    return seen < 0 ? 0 : (seen > kv_len ? kv_len : seen);
  }
  // First query that sees key j (q_len when none does).
  __host__ __device__ int64_t first_query_seeing(int64_t j) const {
    if (!causal) return 0;
    const int64_t first = kv_pos0 + j - q_pos0;
    return first < 0 ? 0 : (first > q_len ? q_len : first);
  }
};

// The shape of a descriptor that sdk::validate_attention_forward/backward
// accepted, refusing a head_dim these kernels do not take.
inline AttentionShape attention_shape(const Args& args, const dfm_attention_desc& d) {
  if (d.head_dim > kMaxHeadDim)
    args.unsupported("'head_dim' is " + std::to_string(d.head_dim) + ", the fp32 attention kernel takes at most " +
                     std::to_string(kMaxHeadDim));
  return AttentionShape{d.batch,
                        d.heads,
                        d.head_dim,
                        d.q_len,
                        d.kv_len,
                        dfm_attention_kv_heads(&d),
                        d.q_token_stride,
                        d.kv_token_stride,
                        d.o_token_stride,
                        d.q_pos0,
                        d.kv_pos0,
                        d.causal != 0 ? 1 : 0,
                        d.scale};
}

// One of a call's tensors (q, k, v, out, or a gradient) as staging.hpp sees
// it: batch * tokens rows of `heads` heads of head_dim values (kv_heads for
// K, V and their gradients), token_stride apart. In a bf16-activation context
// the fp32 kernels run on fp32 copies of them.
inline MatrixLayout attention_rows(const dfm_attention_desc& d, int64_t tokens, int64_t heads, int64_t token_stride) {
  return MatrixLayout{d.batch * tokens, heads * d.head_dim, token_stride};
}

// Blocks of a kernel that gives each (batch, head) pair `tiles` blocks, over
// `heads` heads (the query heads, or the K/V heads of a key-side kernel).
inline unsigned attention_blocks(const Args& args, const AttentionShape& a, int64_t heads, int64_t tiles) {
  const int64_t blocks = a.batch * heads * tiles;
  if (blocks > 0x7fffffff) args.unsupported("the grid needs " + std::to_string(blocks) + " blocks, at most 2^31 - 1");
  return static_cast<unsigned>(blocks);
}

// Lets `kernel` use `bytes` of dynamic shared memory, or says why it cannot.
template <typename Kernel>
void allow_shared_memory(const Args& args, Kernel kernel, size_t bytes) {
  if (bytes > args.context().max_shared_bytes)
    args.unsupported("head_dim needs " + std::to_string(bytes) + " bytes of shared memory per block, this GPU offers " +
                     std::to_string(args.context().max_shared_bytes));
  args.cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
            "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

// The (batch, head) — one of `heads` — and the tile of `length` tokens
// (queries or keys, `tile` at a time) this block works on: blocks run
// (batch, head)-major, tile-minor.
struct BlockTile {
  int64_t b, h, start;  // batch, head, first token of the tile
  int count;            // tokens in the tile (fewer in the last one)
};
__device__ inline BlockTile block_tile(int64_t heads, int64_t length, int tile) {
  const int64_t tiles = (length + tile - 1) / tile;
  const int64_t pair = blockIdx.x / tiles;
  const int64_t start = (blockIdx.x % tiles) * tile;
  return {pair / heads, pair % heads, start, static_cast<int>(min(static_cast<int64_t>(tile), length - start))};
}

// Row pitch of a K or V tile in shared memory: odd, so that lane j reading
// element d of row j (the score phase) hits bank (j * pitch + d) % 32, a
// different bank for every lane.
__host__ __device__ inline int key_pitch(int64_t head_dim) {
  return static_cast<int>(head_dim % 2 == 0 ? head_dim + 1 : head_dim);
}

// Copies `count` rows of head_dim values, row r at src + r * token_stride, into
// tile[r * pitch + d]; rows count .. rows - 1 become zeros. The whole block
// calls it (consecutive threads take consecutive d: coalesced reads).
__device__ inline void load_tile(float* tile, int pitch, const float* src, int64_t token_stride, int count, int rows,
                                 int head_dim) {
  for (int e = threadIdx.x; e < rows * head_dim; e += blockDim.x) {
    const int r = e / head_dim;
    const int d = e % head_dim;
    tile[r * pitch + d] = r < count ? src[r * token_stride + d] : 0.0f;
  }
}

// Dot product of two head_dim rows in shared memory, by one thread.
__device__ inline float dot(const float* x, const float* y, int head_dim) {
  float sum = 0.0f;
  for (int d = 0; d < head_dim; ++d) sum += x[d] * y[d];
  return sum;
}

// Sum over lanes of x[d] * y[d] for one row pair, x in shared memory and y in
// global memory; every lane of the warp calls it and gets the result.
__device__ inline float warp_dot(const float* x, const float* y, int head_dim) {
  float sum = 0.0f;
  for (int d = threadIdx.x % kWarpSize; d < head_dim; d += kWarpSize) sum += x[d] * y[d];
  return warp_sum(sum);
}

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_ATTENTION_CUH
