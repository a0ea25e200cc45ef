// Blockwise attention backward (FlashAttention-2's backward, Dao 2023) for one
// K/V block, given the final out and lse over every block. Per query i and key j:
//   p_ij = e^(scale q_i.k_j - lse_i)      (the final softmax, masked keys 0)
//   D_i  = dout_i . out_i                 (= sum_j p_ij dout_i . v_j)
//   ds_ij = p_ij (dout_i . v_j - D_i)
//   dv_j += sum_i p_ij dout_i,  dk_j += scale sum_i ds_ij q_i,  dq_i += scale sum_j ds_ij k_j.
// Two kernels, each recomputing P tile by tile, so that every gradient
// element is summed by one thread in a fixed order (no atomics, results the
// same run after run), at the price of computing P twice:
//   - dkdv: one block per (batch, head, tile of kKeyTile keys) walks the
//     queries that see the tile, kQueryChunk at a time;
//   - dq:   one block per (batch, head, tile of kQueryTile queries) walks the
//     key tiles those queries see.
#include "attention.cuh"
#include "cudnn_attention.hpp"

namespace dfm::cuda {
namespace {

constexpr int kQueryTile = 32;   // dq kernel
constexpr int kQueryChunk = 16;  // dkdv kernel: queries whose P and dS are staged at once

size_t dkdv_shared_bytes(int64_t head_dim) {
  return sizeof(float) * (2 * kKeyTile * key_pitch(head_dim)  // K and V tiles
                          + 2 * kKeyTile * head_dim           // dK and dV of the tile
                          + 2 * kQueryChunk * head_dim        // queries and their dout
                          + 2 * kQueryChunk * kKeyTile);      // P and dS
}

size_t dq_shared_bytes(int64_t head_dim) {
  return sizeof(float) * (3 * kQueryTile * head_dim             // queries, their dout, dQ
                          + 2 * kKeyTile * key_pitch(head_dim)  // K and V tiles
                          + 2 * kQueryTile);                    // lse, D
}

__global__ void __launch_bounds__(kAttentionThreads)
    attention_dkdv_kernel(AttentionShape a, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dk, float* dv) {
  extern __shared__ float shared[];
  const int dim = static_cast<int>(a.head_dim);
  const int pitch = key_pitch(dim);
  float* k_tile = shared;                              // [kKeyTile][pitch]
  float* v_tile = k_tile + kKeyTile * pitch;           // [kKeyTile][pitch]
  float* dk_acc = v_tile + kKeyTile * pitch;           // [kKeyTile][dim]
  float* dv_acc = dk_acc + kKeyTile * dim;             // [kKeyTile][dim]
  float* q_chunk = dv_acc + kKeyTile * dim;            // [kQueryChunk][dim]
  float* do_chunk = q_chunk + kQueryChunk * dim;       // [kQueryChunk][dim]
  float* p_chunk = do_chunk + kQueryChunk * dim;       // [kQueryChunk][kKeyTile]
  float* ds_chunk = p_chunk + kQueryChunk * kKeyTile;  // [kQueryChunk][kKeyTile]

  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  // One block per (batch, K/V head g, key tile): the query heads of g's group
  // add into the same dK and dV, so they run one after another here (no
  // atomics, the same sums every run).
  const BlockTile tile = block_tile(a.kv_heads, a.kv_len, kKeyTile);
  const int64_t b = tile.b, g = tile.h, j0 = tile.start;
  const int keys = tile.count;
  const int64_t first_query = a.first_query_seeing(j0);
  if (first_query >= a.q_len) return;  // the whole block: no query sees these keys

  load_tile(k_tile, pitch, k + a.kv_head_offset(b, j0, g), a.kv_ts, keys, kKeyTile, dim);
  load_tile(v_tile, pitch, v + a.kv_head_offset(b, j0, g), a.kv_ts, keys, kKeyTile, dim);
  // Thread t owns elements t, t + blockDim.x, ... of dK and dV, in every phase below.
  for (int e = threadIdx.x; e < kKeyTile * dim; e += blockDim.x) {
    dk_acc[e] = 0.0f;
    dv_acc[e] = 0.0f;
  }

  const int64_t group = a.heads / a.kv_heads;
  for (int64_t h = g * group; h < (g + 1) * group; ++h) {
    const float* lse_rows = lse + a.lse_offset(b, h);
    for (int64_t c0 = first_query; c0 < a.q_len; c0 += kQueryChunk) {
      const int chunk = static_cast<int>(min(static_cast<int64_t>(kQueryChunk), a.q_len - c0));
      __syncthreads();  // the previous chunk is no longer read; K and V are in place
      load_tile(q_chunk, dim, q + a.q_offset(b, c0, h), a.q_ts, chunk, kQueryChunk, dim);
      load_tile(do_chunk, dim, dout + a.o_offset(b, c0, h), a.o_ts, chunk, kQueryChunk, dim);
      __syncthreads();
      // P and dS of the chunk: a warp per query, lane j owns key j.
      for (int ci = warp; ci < kQueryChunk; ci += kAttentionWarps) {
        const int64_t i = c0 + ci;
        float p = 0.0f;
        float ds = 0.0f;
        // Both conditions are the same for the whole warp (warp_dot needs every lane).
        if (ci < chunk && lse_rows[i] > -INFINITY) {  // lse = -inf: the query saw no key at all
          const float row_lse = lse_rows[i];
          const float row_d = warp_dot(do_chunk + ci * dim, out + a.o_offset(b, i, h), dim);
          const int64_t seen = min(a.visible_keys(i) - j0, static_cast<int64_t>(keys));
          if (lane < seen) {
            p = expf(dot(q_chunk + ci * dim, k_tile + lane * pitch, dim) * a.scale - row_lse);
            ds = p * (dot(do_chunk + ci * dim, v_tile + lane * pitch, dim) - row_d);
          }
        }
        p_chunk[ci * kKeyTile + lane] = p;
        ds_chunk[ci * kKeyTile + lane] = ds;
      }
      __syncthreads();
      for (int e = threadIdx.x; e < keys * dim; e += blockDim.x) {
        const int j = e / dim;
        const int d = e % dim;
        float dv_sum = dv_acc[e];
        float dk_sum = dk_acc[e];
        for (int ci = 0; ci < chunk; ++ci) {
          dv_sum += p_chunk[ci * kKeyTile + j] * do_chunk[ci * dim + d];
          dk_sum += ds_chunk[ci * kKeyTile + j] * q_chunk[ci * dim + d];
        }
        dv_acc[e] = dv_sum;
        dk_acc[e] = dk_sum;
      }
    }
  }

  for (int e = threadIdx.x; e < keys * dim; e += blockDim.x) {
    const int64_t offset = a.kv_head_offset(b, j0 + e / dim, g) + e % dim;
    dk[offset] += a.scale * dk_acc[e];
    dv[offset] += dv_acc[e];
  }
}

__global__ void __launch_bounds__(kAttentionThreads)
    attention_dq_kernel(AttentionShape a, const float* q, const float* k, const float* v, const float* out,
                        const float* dout, const float* lse, float* dq) {
  extern __shared__ float shared[];
  const int dim = static_cast<int>(a.head_dim);
  const int pitch = key_pitch(dim);
  float* q_tile = shared;                      // [kQueryTile][dim]
  float* do_tile = q_tile + kQueryTile * dim;  // [kQueryTile][dim]
  float* dq_acc = do_tile + kQueryTile * dim;  // [kQueryTile][dim]
  float* k_tile = dq_acc + kQueryTile * dim;   // [kKeyTile][pitch]
  float* v_tile = k_tile + kKeyTile * pitch;   // [kKeyTile][pitch]
  float* row_lse = v_tile + kKeyTile * pitch;  // [kQueryTile]
  float* row_d = row_lse + kQueryTile;         // [kQueryTile]

  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const BlockTile tile = block_tile(a.heads, a.q_len, kQueryTile);
  const int64_t b = tile.b, h = tile.h, i0 = tile.start;
  const int rows = tile.count;

  load_tile(q_tile, dim, q + a.q_offset(b, i0, h), a.q_ts, rows, rows, dim);
  load_tile(do_tile, dim, dout + a.o_offset(b, i0, h), a.o_ts, rows, rows, dim);
  __syncthreads();
  for (int r = warp; r < rows; r += kAttentionWarps) {
    const float d_value = warp_dot(do_tile + r * dim, out + a.o_offset(b, i0 + r, h), dim);
    for (int d = lane; d < dim; d += kWarpSize) dq_acc[r * dim + d] = 0.0f;
    if (lane == 0) {
      row_lse[r] = lse[a.lse_offset(b, h) + i0 + r];
      row_d[r] = d_value;
    }
  }

  const int64_t key_end = a.visible_keys(i0 + rows - 1);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    const int keys = static_cast<int>(min(static_cast<int64_t>(kKeyTile), key_end - j0));
    __syncthreads();  // the previous K/V tile is no longer read; the row state is in place
    load_tile(k_tile, pitch, k + a.kv_offset(b, j0, h), a.kv_ts, keys, kKeyTile, dim);
    load_tile(v_tile, pitch, v + a.kv_offset(b, j0, h), a.kv_ts, keys, kKeyTile, dim);
    __syncthreads();
    for (int r = warp; r < rows; r += kAttentionWarps) {
      const float lse_r = row_lse[r];
      if (!(lse_r > -INFINITY)) continue;  // the query saw no key at all
      const int seen = static_cast<int>(min(a.visible_keys(i0 + r) - j0, static_cast<int64_t>(keys)));
      if (seen <= 0) continue;
      float ds = 0.0f;
      if (lane < seen) {
        const float p = expf(dot(q_tile + r * dim, k_tile + lane * pitch, dim) * a.scale - lse_r);
        ds = p * (dot(do_tile + r * dim, v_tile + lane * pitch, dim) - row_d[r]);
      }
      for (int d0 = 0; d0 < dim; d0 += kWarpSize) {
        const int d = d0 + lane;
        float sum = 0.0f;
        for (int j = 0; j < seen; ++j) {
          const float ds_j = __shfl_sync(kFullMask, ds, j);
          if (d < dim) sum += ds_j * k_tile[j * pitch + d];
        }
        if (d < dim) dq_acc[r * dim + d] += sum;
      }
    }
  }

  __syncthreads();
  for (int r = warp; r < rows; r += kAttentionWarps) {
    float* dq_row = dq + a.q_offset(b, i0 + r, h);
    for (int d = lane; d < dim; d += kWarpSize) dq_row[d] += a.scale * dq_acc[r * dim + d];
  }
}

}  // namespace

dfm_status attention_backward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                              const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  return sdk::guard([&] {
    const Args args("attention_backward", ctx);
    const dfm_attention_desc& d = sdk::validate_attention_backward(args, desc, q, k, v, out, dout, lse, dq, dk, dv);
    CudnnAttention* cudnn = args.context().cudnn.get();
    if (cudnn != nullptr && cudnn->backward(args, d, q, k, v, out, dout, lse, dq, dk, dv)) return;
    const AttentionShape a = attention_shape(args, d);
    // With no queries or no keys every gradient term is 0: nothing to add.
    if (a.batch * a.q_len == 0 || a.batch * a.kv_len == 0) return;
    Staging staging(args);
    const int32_t act = args.context().activations;
    const auto fp32 = [&](const float* x, int64_t tokens, int64_t heads, int64_t stride) {
      return static_cast<const float*>(staging.read(x, act, DFM_DTYPE_FP32, attention_rows(d, tokens, heads, stride)));
    };
    const auto fp32_sum = [&](float* x, int64_t tokens, int64_t heads, int64_t stride) {  // a gradient added to
      return static_cast<float*>(
          staging.write(x, act, DFM_DTYPE_FP32, attention_rows(d, tokens, heads, stride), true));
    };
    q = fp32(q, d.q_len, a.heads, d.q_token_stride);
    k = fp32(k, d.kv_len, a.kv_heads, d.kv_token_stride);
    v = fp32(v, d.kv_len, a.kv_heads, d.kv_token_stride);
    out = fp32(out, d.q_len, a.heads, d.o_token_stride);
    dout = fp32(dout, d.q_len, a.heads, d.o_token_stride);
    dq = fp32_sum(dq, d.q_len, a.heads, d.q_token_stride);
    dk = fp32_sum(dk, d.kv_len, a.kv_heads, d.kv_token_stride);
    dv = fp32_sum(dv, d.kv_len, a.kv_heads, d.kv_token_stride);

    const unsigned dkdv_blocks = attention_blocks(args, a, a.kv_heads, (a.kv_len + kKeyTile - 1) / kKeyTile);
    const size_t dkdv_shared = dkdv_shared_bytes(a.head_dim);
    allow_shared_memory(args, attention_dkdv_kernel, dkdv_shared);
    attention_dkdv_kernel<<<dkdv_blocks, kAttentionThreads, dkdv_shared, args.stream()>>>(a, q, k, v, out, dout, lse,
                                                                                          dk, dv);
    args.launched();

    const unsigned dq_blocks = attention_blocks(args, a, a.heads, (a.q_len + kQueryTile - 1) / kQueryTile);
    const size_t dq_shared = dq_shared_bytes(a.head_dim);
    allow_shared_memory(args, attention_dq_kernel, dq_shared);
    attention_dq_kernel<<<dq_blocks, kAttentionThreads, dq_shared, args.stream()>>>(a, q, k, v, out, dout, lse, dq);
    args.launched();
    staging.finish();
  });
}

}  // namespace dfm::cuda
