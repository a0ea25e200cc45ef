// Blockwise attention forward with an online softmax (Milakov & Gimelshein
// 2018; FlashAttention, Dao et al. 2022). One thread block per (batch, head,
// tile of kQueryTile queries) streams the block's keys through shared memory
// kKeyTile at a time, keeping per query a running max m, a running sum
// l = sum e^(s - m) and an unnormalised output acc = sum e^(s - m) v. Shared
// memory per block is O((kQueryTile + kKeyTile) * head_dim), whatever the
// sequence length.
//
// Merging with earlier blocks (accumulate = 1) is exact: a stored result
// (out, lse) is the state m = lse, l = 1, acc = out, since
// out = sum e^(s - lse) v over the earlier keys and sum e^(s - lse) = 1.
#include "attention.cuh"
#include "cudnn_attention.hpp"

namespace dfm::cuda {
namespace {

constexpr int kQueryTile = 64;

size_t forward_shared_bytes(int64_t head_dim) {
  return sizeof(float) * (2 * kQueryTile * head_dim             // queries, acc
                          + 2 * kKeyTile * key_pitch(head_dim)  // K and V tiles
                          + 2 * kQueryTile);                    // m, l
}

__global__ void __launch_bounds__(kAttentionThreads)
    attention_forward_kernel(AttentionShape a, const float* q, const float* k, const float* v, float* out, float* lse,
                             int accumulate) {
  extern __shared__ float shared[];
  const int dim = static_cast<int>(a.head_dim);
  const int pitch = key_pitch(dim);
  float* q_tile = shared;                      // [kQueryTile][dim]
  float* acc = q_tile + kQueryTile * dim;      // [kQueryTile][dim]
  float* k_tile = acc + kQueryTile * dim;      // [kKeyTile][pitch]
  float* v_tile = k_tile + kKeyTile * pitch;   // [kKeyTile][pitch]
  float* row_max = v_tile + kKeyTile * pitch;  // [kQueryTile]
  float* row_sum = row_max + kQueryTile;       // [kQueryTile]

  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const BlockTile tile = block_tile(a.heads, a.q_len, kQueryTile);
  const int64_t b = tile.b, h = tile.h, i0 = tile.start;
  const int rows = tile.count;
  float* lse_rows = lse + a.lse_offset(b, h) + i0;

  load_tile(q_tile, dim, q + a.q_offset(b, i0, h), a.q_ts, rows, rows, dim);
  for (int r = warp; r < rows; r += kAttentionWarps) {
    const float* o = out + a.o_offset(b, i0 + r, h);
    const bool resume = accumulate && lse_rows[r] > -INFINITY;
    for (int d = lane; d < dim; d += kWarpSize) acc[r * dim + d] = resume ? o[d] : 0.0f;
    if (lane == 0) {
      row_max[r] = resume ? lse_rows[r] : -INFINITY;
      row_sum[r] = resume ? 1.0f : 0.0f;
    }
  }

  // Rows see a growing prefix of keys, so the tile's last row sees the most.
  const int64_t key_end = a.visible_keys(i0 + rows - 1);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    const int keys = static_cast<int>(min(static_cast<int64_t>(kKeyTile), key_end - j0));
    __syncthreads();  // the previous K/V tile is no longer read; the row state and queries are in place
    load_tile(k_tile, pitch, k + a.kv_offset(b, j0, h), a.kv_ts, keys, kKeyTile, dim);
    load_tile(v_tile, pitch, v + a.kv_offset(b, j0, h), a.kv_ts, keys, kKeyTile, dim);
    __syncthreads();
    for (int r = warp; r < rows; r += kAttentionWarps) {
      const int seen = static_cast<int>(min(a.visible_keys(i0 + r) - j0, static_cast<int64_t>(keys)));
      if (seen <= 0) continue;  // causal: the whole tile is in this query's future (the same for the whole warp)
      // Score phase: lane j owns key j.
      const float s = lane < seen ? dot(q_tile + r * dim, k_tile + lane * pitch, dim) * a.scale : -INFINITY;
      const float m_old = row_max[r];
      const float m_new = fmaxf(m_old, warp_max(s));
      const float p = lane < seen ? expf(s - m_new) : 0.0f;
      const float p_sum = warp_sum(p);
      const float rescale = expf(m_old - m_new);  // 0 while nothing was seen (m_old = -inf)
      // Accumulation phase: lane owns dimensions d0 + lane; probabilities come by shuffle.
      for (int d0 = 0; d0 < dim; d0 += kWarpSize) {
        const int d = d0 + lane;
        float value = d < dim ? acc[r * dim + d] * rescale : 0.0f;
        for (int j = 0; j < seen; ++j) {
          const float pj = __shfl_sync(kFullMask, p, j);
          if (d < dim) value += pj * v_tile[j * pitch + d];
        }
        if (d < dim) acc[r * dim + d] = value;
      }
      __syncwarp();  // every lane has read row_max[r] before lane 0 replaces it
      if (lane == 0) {
        row_sum[r] = row_sum[r] * rescale + p_sum;
        row_max[r] = m_new;
      }
    }
  }

  __syncthreads();
  for (int r = warp; r < rows; r += kAttentionWarps) {
    float* o = out + a.o_offset(b, i0 + r, h);
    const float l = row_sum[r];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    // A row that saw no key in any block so far: out 0, lse -inf.
    for (int d = lane; d < dim; d += kWarpSize) o[d] = l > 0.0f ? acc[r * dim + d] * inv : 0.0f;
    if (lane == 0) lse_rows[r] = l > 0.0f ? row_max[r] + logf(l) : -INFINITY;
  }
}

}  // namespace

dfm_status attention_forward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                             float* out, float* lse, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("attention_forward", ctx);
    const dfm_attention_desc& d = sdk::validate_attention_forward(args, desc, q, k, v, out, lse);
    CudnnAttention* cudnn = args.context().cudnn.get();
    if (cudnn != nullptr && cudnn->forward(args, d, q, k, v, out, lse, accumulate != 0)) return;
    const AttentionShape a = attention_shape(args, d);
    const unsigned blocks = attention_blocks(args, a, a.heads, (a.q_len + kQueryTile - 1) / kQueryTile);
    if (blocks == 0) return;
    const size_t shared = forward_shared_bytes(a.head_dim);
    allow_shared_memory(args, attention_forward_kernel, shared);
    Staging staging(args);
    const int32_t act = args.context().activations;
    const auto fp32 = [&](const float* x, int64_t tokens, int64_t heads, int64_t stride) {
      return static_cast<const float*>(staging.read(x, act, DFM_DTYPE_FP32, attention_rows(d, tokens, heads, stride)));
    };
    float* out32 = static_cast<float*>(staging.write(out, act, DFM_DTYPE_FP32,
                                                     attention_rows(d, d.q_len, a.heads, d.o_token_stride),
                                                     accumulate != 0));
    attention_forward_kernel<<<blocks, kAttentionThreads, shared, args.stream()>>>(
        a, fp32(q, d.q_len, a.heads, d.q_token_stride), fp32(k, d.kv_len, a.kv_heads, d.kv_token_stride),
        fp32(v, d.kv_len, a.kv_heads, d.kv_token_stride), out32, lse, accumulate != 0);
    args.launched();
    staging.finish();
  });
}

}  // namespace dfm::cuda
