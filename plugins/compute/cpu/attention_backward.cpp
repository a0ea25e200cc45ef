// Blockwise attention backward (FlashAttention-2's backward, Dao 2023) for one
// K/V block, given the final out and lse over every block. Per query i and key j:
//   p_ij = e^(scale q_i.k_j - lse_i)      (the final softmax, masked keys 0)
//   D_i  = dout_i . out_i                 (= sum_j p_ij dout_i . v_j)
//   ds_ij = p_ij (dout_i . v_j - D_i)
//   dv_j += sum_i p_ij dout_i,  dk_j += scale sum_i ds_ij q_i,  dq_i += scale sum_j ds_ij k_j.
// One task per (batch, head) pair walks key tiles outermost and every query
// that sees the tile inside, so all of a pair's sums run in one fixed order
// on one thread: the gradients do not depend on the thread count. Working
// memory per thread is O(kKeyTile * head_dim).
#include <omp.h>

#include <limits>
#include <vector>

#include "attention.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

int64_t scratch_floats(int64_t head_dim) {
  return 2 * head_dim * kKeyTile    // transposed K and V tiles
         + 2 * kKeyTile * head_dim  // dk and dv of the tile
         + 2 * kKeyTile             // p and ds of one query
         + head_dim;                // dq of one query
}

struct Gradients {
  float* dq;
  float* dk;
  float* dv;
};

DFM_CPU_MULTIVERSION
void backward_pair(const AttentionShape& a, const float* q, const float* k, const float* v, const float* out,
                   const float* dout, const float* lse, const Gradients& g, int64_t b, int64_t h, float* scratch) {
  const int64_t dim = a.head_dim;
  float* kt = scratch;
  float* vt = kt + dim * kKeyTile;
  float* dk_tile = vt + dim * kKeyTile;
  float* dv_tile = dk_tile + kKeyTile * dim;
  float* __restrict p = dv_tile + kKeyTile * dim;
  float* __restrict ds = p + kKeyTile;
  float* __restrict dq_row = ds + kKeyTile;
  const float* lse_rows = a.lse_row(lse, b, h);

  for (int64_t j0 = 0; j0 < a.kv_len; j0 += kKeyTile) {
    const int64_t keys = std::min(kKeyTile, a.kv_len - j0);
    const int64_t first_query = a.first_query_seeing(j0);
    if (first_query >= a.q_len) break;  // later tiles are further in the future
    load_transposed_tile(a, k, b, h, j0, keys, kt);
    load_transposed_tile(a, v, b, h, j0, keys, vt);
    std::fill(dk_tile, dk_tile + keys * dim, 0.0f);
    std::fill(dv_tile, dv_tile + keys * dim, 0.0f);

    for (int64_t i = first_query; i < a.q_len; ++i) {
      const float row_lse = lse_rows[i];
      if (!(row_lse > -std::numeric_limits<float>::infinity())) continue;  // the query saw no key at all
      const int64_t seen = std::min(a.visible_keys(i) - j0, keys);
      if (seen <= 0) continue;
      const float* __restrict qr = a.q_row(q, b, i, h);
      const float* __restrict dor = a.o_row(dout, b, i, h);
      const float* __restrict orow = a.o_row(out, b, i, h);

      float row_d = 0.0f;
#pragma omp simd reduction(+ : row_d)
      for (int64_t d = 0; d < dim; ++d) row_d += dor[d] * orow[d];

      // p = q . k_j (scores), ds = dout . v_j, both over a full tile of keys.
      for (int64_t j = 0; j < kKeyTile; ++j) {
        p[j] = 0.0f;
        ds[j] = 0.0f;
      }
      for (int64_t d = 0; d < dim; ++d) {
        const float qd = qr[d];
        const float dod = dor[d];
        const float* __restrict kd = kt + d * kKeyTile;
        const float* __restrict vd = vt + d * kKeyTile;
#pragma omp simd
        for (int64_t j = 0; j < kKeyTile; ++j) {
          p[j] += qd * kd[j];
          ds[j] += dod * vd[j];
        }
      }
#pragma omp simd
      for (int64_t j = 0; j < seen; ++j) {
        p[j] = exp_vec(p[j] * a.scale - row_lse);
        ds[j] = p[j] * (ds[j] - row_d);
      }

      for (int64_t d = 0; d < dim; ++d) dq_row[d] = 0.0f;
      for (int64_t j = 0; j < seen; ++j) {
        const float pj = p[j];
        const float dsj = ds[j];
        const float* __restrict kr = a.kv_row(k, b, j0 + j, h);
        float* __restrict dvr = dv_tile + j * dim;
        float* __restrict dkr = dk_tile + j * dim;
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) {
          dvr[d] += pj * dor[d];
          dkr[d] += dsj * qr[d];
          dq_row[d] += dsj * kr[d];
        }
      }
      float* __restrict dqr = a.q_row(g.dq, b, i, h);
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) dqr[d] += a.scale * dq_row[d];
    }

    for (int64_t j = 0; j < keys; ++j) {
      float* __restrict dkr = a.kv_row(g.dk, b, j0 + j, h);
      float* __restrict dvr = a.kv_row(g.dv, b, j0 + j, h);
      const float* __restrict dkt = dk_tile + j * dim;
      const float* __restrict dvt = dv_tile + j * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) {
        dkr[d] += a.scale * dkt[d];
        dvr[d] += dvt[d];
      }
    }
  }
}

}  // namespace

dfm_status attention_backward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k,
                              const float* v, const float* out, const float* dout, const float* lse, float* dq,
                              float* dk, float* dv) {
  return sdk::guard([&] {
    const Args args("attention_backward", ctx);
    const AttentionShape a = attention_shape(args, desc);
    const int64_t q_rows = a.batch * a.q_len;
    const int64_t kv_rows = a.batch * a.kv_len;
    args.pointer("q", q, q_rows);
    args.pointer("k", k, kv_rows);
    args.pointer("v", v, kv_rows);
    args.pointer("out", out, q_rows);
    args.pointer("dout", dout, q_rows);
    args.pointer("lse", lse, q_rows);
    args.pointer("dq", dq, q_rows);
    args.pointer("dk", dk, kv_rows);
    args.pointer("dv", dv, kv_rows);

    const int64_t pairs = a.batch * a.heads;
    const int threads = args.threads_for(pairs * a.q_len * std::max<int64_t>(a.kv_len, 1) * a.head_dim);
    const int64_t per_thread = scratch_floats(a.head_dim);
    std::vector<float> scratch(static_cast<size_t>(per_thread * threads));
    const Gradients g{dq, dk, dv};
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int64_t pair = 0; pair < pairs; ++pair)
      backward_pair(a, q, k, v, out, dout, lse, g, pair / a.heads, pair % a.heads,
                    scratch.data() + omp_get_thread_num() * per_thread);
  });
}

}  // namespace dfm::cpu
