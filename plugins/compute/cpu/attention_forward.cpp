// Blockwise attention forward with an online softmax (Milakov & Gimelshein
// 2018; FlashAttention, Dao et al. 2022). Each task takes kQueryTile queries
// of one (batch, head) pair and walks the block's keys a tile at a time,
// keeping per query a running max m, a running sum l = sum e^(s - m) and an
// unnormalised output acc = sum e^(s - m) v. Working memory per thread is
// O((kKeyTile + kQueryTile) * head_dim), whatever the sequence length.
//
// Merging with earlier blocks (accumulate = 1) is exact: a stored result
// (out, lse) is the state m = lse, l = 1, acc = out, since
// out = sum e^(s - lse) v over the earlier keys and sum e^(s - lse) = 1.
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "attention.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// Floats of scratch one thread needs.
int64_t scratch_floats(int64_t head_dim) {
  return head_dim * kKeyTile              // transposed key tile
         + kKeyTile * padded(head_dim)    // value tile by rows
         + kKeyTile                       // one row of scores / probabilities
         + kQueryTile * padded(head_dim)  // acc
         + 2 * kQueryTile;                // m, l
}

// Queries i0 .. i0 + rows - 1 of pair (b, h).
DFM_CPU_MULTIVERSION
void forward_query_tile(const AttentionShape& a, const float* q, const float* k, const float* v, float* out, float* lse,
                        bool accumulate, int64_t b, int64_t h, int64_t i0, int64_t rows, float* scratch) {
  const int64_t dim = a.head_dim;
  const int64_t dp = padded(dim);
  float* kt = scratch;
  float* v_rows = kt + dim * kKeyTile;
  float* __restrict s = v_rows + kKeyTile * dp;
  float* acc = s + kKeyTile;
  float* m = acc + kQueryTile * dp;
  float* l = m + kQueryTile;
  float* lse_rows = a.lse_row(lse, b, h) + i0;

  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict ar = acc + r * dp;
    const float* o = a.o_row(out, b, i0 + r, h);
    const bool earlier = accumulate && lse_rows[r] > kMinusInf;
    m[r] = earlier ? lse_rows[r] : kMinusInf;
    l[r] = earlier ? 1.0f : 0.0f;
    for (int64_t d = 0; d < dp; ++d) ar[d] = (earlier && d < dim) ? o[d] : 0.0f;
  }

  // Rows see a growing prefix of keys, so the tile's last row sees the most.
  const int64_t key_end = a.visible_keys(i0 + rows - 1);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    const int64_t keys = std::min(kKeyTile, key_end - j0);
    load_transposed_tile(a, k, b, h, j0, keys, kt);
    load_rows([&](int64_t j) { return a.kv_row(v, b, j0 + j, h); }, keys, kKeyTile, dim, dp, v_rows);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t seen = std::min(a.visible_keys(i0 + r) - j0, keys);
      if (seen <= 0) continue;  // causal: the whole tile is in this query's future
      const float* __restrict qr = a.q_row(q, b, i0 + r, h);
      // Scores of the 64 keys, held in registers over d.
      Float16 s0 = {}, s1 = {}, s2 = {}, s3 = {};
      for (int64_t d = 0; d < dim; ++d) {
        const float qd = qr[d];
        const float* kd = kt + d * kKeyTile;
        s0 += qd * load16(kd);
        s1 += qd * load16(kd + 16);
        s2 += qd * load16(kd + 32);
        s3 += qd * load16(kd + 48);
      }
      store16(s, s0);
      store16(s + 16, s1);
      store16(s + 32, s2);
      store16(s + 48, s3);
      float tile_max = kMinusInf;
#pragma omp simd reduction(max : tile_max)
      for (int64_t j = 0; j < seen; ++j) {
        s[j] *= a.scale;
        tile_max = s[j] > tile_max ? s[j] : tile_max;
      }
      const float m_new = std::max(m[r], tile_max);
      const float rescale = exp_vec(m[r] - m_new);  // 0 while nothing was seen (m = -inf)
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < seen; ++j) {
        s[j] = exp_vec(s[j] - m_new);
        sum += s[j];
      }
      l[r] = l[r] * rescale + sum;
      m[r] = m_new;
      // acc = acc * rescale + sum_j p_j v_j, a chunk of head_dim at a time in registers.
      float* ar = acc + r * dp;
      for (int64_t d0 = 0; d0 < dp; d0 += kChunk) {
        Float16 lo = load16(ar + d0) * rescale, hi = load16(ar + d0 + 16) * rescale;
        for (int64_t j = 0; j < seen; ++j) {
          const float* vr = v_rows + j * dp + d0;
          lo += s[j] * load16(vr);
          hi += s[j] * load16(vr + 16);
        }
        store16(ar + d0, lo);
        store16(ar + d0 + 16, hi);
      }
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict o = a.o_row(out, b, i0 + r, h);
    const float* __restrict ar = acc + r * dp;
    if (l[r] > 0.0f) {
      const float inv = 1.0f / l[r];
      for (int64_t d = 0; d < dim; ++d) o[d] = ar[d] * inv;
      lse_rows[r] = m[r] + std::log(l[r]);
    } else {  // no key seen in any block so far
      for (int64_t d = 0; d < dim; ++d) o[d] = 0.0f;
      lse_rows[r] = kMinusInf;
    }
  }
}

}  // namespace

dfm_status attention_forward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                             float* out, float* lse, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("attention_forward", ctx);
    const AttentionShape given = attention_shape(sdk::validate_attention_forward(args, desc, q, k, v, out, lse));
    AttentionShape a = given;  // with the strides of the fp32 views
    Fp32Staging staging(args);
    const Fp32Inputs in = stage_inputs(staging, q, k, v, given, a);
    float* os =
        stage_outputs(staging, accumulate ? Fp32Staging::Use::kUpdate : Fp32Staging::Use::kWrite, out, given, a);

    const int64_t query_tiles = (a.q_len + kQueryTile - 1) / kQueryTile;
    const int64_t tasks = a.batch * a.heads * query_tiles;
    const int threads = args.threads_for(a.batch * a.heads * a.q_len * std::max<int64_t>(a.kv_len, 1) * a.head_dim);
    const int64_t per_thread = scratch_floats(a.head_dim);
    std::vector<float> scratch(static_cast<size_t>(per_thread * threads));
    // Causal tiles differ in cost (later queries see more keys): hand them out dynamically.
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t tile = task % query_tiles;
      const int64_t pair = task / query_tiles;
      const int64_t i0 = tile * kQueryTile;
      forward_query_tile(a, in.q, in.k, in.v, os, lse, accumulate != 0, pair / a.heads, pair % a.heads, i0,
                         std::min(kQueryTile, a.q_len - i0), scratch.data() + omp_get_thread_num() * per_thread);
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
