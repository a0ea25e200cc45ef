// Blockwise attention backward (FlashAttention-2's backward, Dao 2023) for one
// K/V block, given the final out and lse over every block. Per query i and key j:
//   p_ij = e^(scale q_i.k_j - lse_i)      (the final softmax, masked keys 0)
//   D_i  = dout_i . out_i                 (= sum_j p_ij dout_i . v_j)
//   ds_ij = p_ij (dout_i . v_j - D_i)
//   dv_j += sum_i p_ij dout_i,  dk_j += scale sum_i ds_ij q_i,  dq_i += scale sum_j ds_ij k_j.
// One task per (batch, head) pair walks key tiles outermost and, inside, the
// tiles of queries that see them, so all of a pair's sums run in one fixed
// order on one thread: the gradients do not depend on the thread count.
// Working memory per thread is O((kKeyTile + kQueryTile) * head_dim + kQueryTile * kKeyTile).
#include <omp.h>

#include <limits>
#include <vector>

#include "attention.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

int64_t scratch_floats(int64_t head_dim) {
  const int64_t dp = padded(head_dim);
  return 2 * head_dim * kKeyTile       // K and V tiles transposed, for the scores
         + 3 * kKeyTile * dp           // K tile by rows; dk and dv of the tile
         + 2 * kQueryTile * dp         // Q and dout tiles by rows
         + 2 * kQueryTile * kKeyTile;  // p and ds of the tile pair
}

struct Gradients {
  float* dq;
  float* dk;
  float* dv;
};

// out[0 .. kChunk) += sum_r w[r * w_stride] * rows[r * dp + d0 .. + kChunk),
// the sums held in registers while r runs over the tile.
inline void weighted_row_sum(const float* __restrict w, int64_t w_stride, const float* __restrict rows, int64_t count,
                             int64_t dp, int64_t d0, float* __restrict out) {
  Float16 lo = {}, hi = {};
  for (int64_t r = 0; r < count; ++r) {
    const float wr = w[r * w_stride];
    const float* row = rows + r * dp + d0;
    lo += wr * load16(row);
    hi += wr * load16(row + 16);
  }
  store16(out, load16(out) + lo);
  store16(out + 16, load16(out + 16) + hi);
}

DFM_CPU_MULTIVERSION
void backward_pair(const AttentionShape& a, const float* q, const float* k, const float* v, const float* out,
                   const float* dout, const float* lse, const Gradients& g, int64_t b, int64_t h, float* scratch) {
  const int64_t dim = a.head_dim;
  const int64_t dp = padded(dim);
  float* kt = scratch;
  float* vt = kt + dim * kKeyTile;
  float* k_rows = vt + dim * kKeyTile;
  float* dk_tile = k_rows + kKeyTile * dp;
  float* dv_tile = dk_tile + kKeyTile * dp;
  float* q_rows = dv_tile + kKeyTile * dp;
  float* do_rows = q_rows + kQueryTile * dp;
  float* p = do_rows + kQueryTile * dp;  // [kQueryTile][kKeyTile]
  float* ds = p + kQueryTile * kKeyTile;
  const float* lse_rows = a.lse_row(lse, b, h);
  float dq_row[kChunk];

  for (int64_t j0 = 0; j0 < a.kv_len; j0 += kKeyTile) {
    const int64_t keys = std::min(kKeyTile, a.kv_len - j0);
    const int64_t first_query = a.first_query_seeing(j0);
    if (first_query >= a.q_len) break;  // later tiles are further in the future
    load_transposed_tile(a, k, b, h, j0, keys, kt);
    load_transposed_tile(a, v, b, h, j0, keys, vt);
    load_rows([&](int64_t j) { return a.kv_row(k, b, j0 + j, h); }, keys, kKeyTile, dim, dp, k_rows);
    std::fill(dk_tile, dk_tile + kKeyTile * dp, 0.0f);
    std::fill(dv_tile, dv_tile + kKeyTile * dp, 0.0f);

    for (int64_t i0 = first_query; i0 < a.q_len; i0 += kQueryTile) {
      const int64_t rows = std::min(kQueryTile, a.q_len - i0);
      load_rows([&](int64_t r) { return a.q_row(q, b, i0 + r, h); }, rows, kQueryTile, dim, dp, q_rows);
      load_rows([&](int64_t r) { return a.o_row(dout, b, i0 + r, h); }, rows, kQueryTile, dim, dp, do_rows);

      // p and ds of every (query, key) pair of the two tiles; 0 where masked.
      for (int64_t r = 0; r < rows; ++r) {
        float* __restrict pr = p + r * kKeyTile;
        float* __restrict dsr = ds + r * kKeyTile;
        std::fill(pr, pr + kKeyTile, 0.0f);
        std::fill(dsr, dsr + kKeyTile, 0.0f);
        const float row_lse = lse_rows[i0 + r];
        const int64_t seen = std::min(a.visible_keys(i0 + r) - j0, keys);
        // A query that saw no key at all (lse = -inf) has no gradient.
        if (seen <= 0 || !(row_lse > -std::numeric_limits<float>::infinity())) continue;
        const float* __restrict qr = q_rows + r * dp;
        const float* __restrict dor = do_rows + r * dp;
        const float* __restrict orow = a.o_row(out, b, i0 + r, h);
        float row_d = 0.0f;  // D_i = dout_i . out_i
#pragma omp simd reduction(+ : row_d)
        for (int64_t d = 0; d < dim; ++d) row_d += dor[d] * orow[d];
        // Scores and dout . v for the 64 keys, held in registers over d.
        Float16 s0 = {}, s1 = {}, s2 = {}, s3 = {}, e0 = {}, e1 = {}, e2 = {}, e3 = {};
        for (int64_t d = 0; d < dim; ++d) {
          const float qd = qr[d];
          const float dod = dor[d];
          const float* kd = kt + d * kKeyTile;
          const float* vd = vt + d * kKeyTile;
          s0 += qd * load16(kd);
          s1 += qd * load16(kd + 16);
          s2 += qd * load16(kd + 32);
          s3 += qd * load16(kd + 48);
          e0 += dod * load16(vd);
          e1 += dod * load16(vd + 16);
          e2 += dod * load16(vd + 32);
          e3 += dod * load16(vd + 48);
        }
        float score[kKeyTile], dp_sum[kKeyTile];
        store16(score, s0);
        store16(score + 16, s1);
        store16(score + 32, s2);
        store16(score + 48, s3);
        store16(dp_sum, e0);
        store16(dp_sum + 16, e1);
        store16(dp_sum + 32, e2);
        store16(dp_sum + 48, e3);
#pragma omp simd
        for (int64_t j = 0; j < kKeyTile; ++j) {
          const float pj = j < seen ? exp_vec(score[j] * a.scale - row_lse) : 0.0f;
          dsr[j] = pj * (dp_sum[j] - row_d);
          pr[j] = pj;
        }
      }

      // dq_i += scale sum_j ds_ij k_j
      for (int64_t r = 0; r < rows; ++r) {
        float* dqr = a.q_row(g.dq, b, i0 + r, h);
        for (int64_t d0 = 0; d0 < dim; d0 += kChunk) {
          for (int64_t d = 0; d < kChunk; ++d) dq_row[d] = 0.0f;
          weighted_row_sum(ds + r * kKeyTile, 1, k_rows, keys, dp, d0, dq_row);
          const int64_t width = std::min(kChunk, dim - d0);
          for (int64_t d = 0; d < width; ++d) dqr[d0 + d] += a.scale * dq_row[d];
        }
      }
      // dk_j += sum_i ds_ij q_i (scaled when written), dv_j += sum_i p_ij dout_i
      for (int64_t j = 0; j < keys; ++j)
        for (int64_t d0 = 0; d0 < dp; d0 += kChunk) {
          weighted_row_sum(ds + j, kKeyTile, q_rows, rows, dp, d0, dk_tile + j * dp + d0);
          weighted_row_sum(p + j, kKeyTile, do_rows, rows, dp, d0, dv_tile + j * dp + d0);
        }
    }

    for (int64_t j = 0; j < keys; ++j) {
      float* __restrict dkr = a.kv_row(g.dk, b, j0 + j, h);
      float* __restrict dvr = a.kv_row(g.dv, b, j0 + j, h);
      const float* __restrict dkt = dk_tile + j * dp;
      const float* __restrict dvt = dv_tile + j * dp;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) {
        dkr[d] += a.scale * dkt[d];
        dvr[d] += dvt[d];
      }
    }
  }
}

}  // namespace

dfm_status attention_backward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                              const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  return sdk::guard([&] {
    const Args args("attention_backward", ctx);
    const AttentionShape given =
        attention_shape(sdk::validate_attention_backward(args, desc, q, k, v, out, dout, lse, dq, dk, dv));
    AttentionShape a = given;  // with the strides of the fp32 views
    Fp32Staging staging(args);
    using Use = Fp32Staging::Use;
    const Fp32Inputs in = stage_inputs(staging, q, k, v, given, a);
    const float* os = stage_outputs(staging, Use::kRead, out, given, a);
    const float* dos = stage_outputs(staging, Use::kRead, dout, given, a);
    const Gradients g{stage_queries(staging, Use::kUpdate, dq, given, a),
                      stage_keys(staging, Use::kUpdate, dk, given, a), stage_keys(staging, Use::kUpdate, dv, given, a)};

    // One task per (batch, K/V head): the query heads of a group add into the
    // same dk and dv, so they run one after another in one task — no race,
    // and the order of the sum never depends on the thread count.
    const int64_t pairs = a.batch * a.kv_heads, group = a.heads / a.kv_heads;
    const int threads = args.threads_for(a.batch * a.heads * a.q_len * std::max<int64_t>(a.kv_len, 1) * a.head_dim);
    const int64_t per_thread = scratch_floats(a.head_dim);
    std::vector<float> scratch(static_cast<size_t>(per_thread * threads));
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t pair = 0; pair < pairs; ++pair)
      for (int64_t h = pair % a.kv_heads * group; h < (pair % a.kv_heads + 1) * group; ++h)
        backward_pair(a, in.q, in.k, in.v, os, dos, lse, g, pair / a.kv_heads, h,
                      scratch.data() + omp_get_thread_num() * per_thread);
    staging.finish();
  });
}

}  // namespace dfm::cpu
