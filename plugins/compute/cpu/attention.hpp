// Shared by attention_forward.cpp and attention_backward.cpp: the shape of one
// attention block, where each row lives, and which keys a query sees.
#ifndef DFM_PLUGINS_COMPUTE_CPU_ATTENTION_HPP
#define DFM_PLUGINS_COMPUTE_CPU_ATTENTION_HPP

#include <algorithm>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {

// Tiles: a key tile of 64 keeps one row of scores in four AVX-512 registers
// and a transposed K or V tile (64 x head_dim) in L1/L2 while every query of
// the (batch, head) pair streams past it. Forward tasks take 64 queries each.
constexpr int64_t kKeyTile = 64;
constexpr int64_t kQueryTile = 64;

// head_dim rounded up to whole chunks of kChunk floats (two Float16): row
// tiles are stored with that many columns, zero-padded, so that sums over a
// tile run in whole chunks held in registers.
constexpr int64_t kChunk = 32;
// The kernels unroll by hand: four Float16 of scores per key tile, two per chunk.
static_assert(kKeyTile == 4 * 16 && kChunk == 2 * 16, "attention loops are unrolled for these tile sizes");
inline int64_t padded(int64_t head_dim) { return (head_dim + kChunk - 1) / kChunk * kChunk; }

struct AttentionShape {
  int64_t batch, heads, head_dim, q_len, kv_len;
  int64_t kv_heads;  // grouped-query attention: query head h reads K/V head h / (heads / kv_heads)
  int64_t q_ts, kv_ts, o_ts;
  int64_t q_pos0, kv_pos0;
  bool causal;
  float scale;

  // Start of the head_dim values of token t, head h in batch element b.
  template <typename T>
  T* q_row(T* q, int64_t b, int64_t t, int64_t h) const {
    return q + (b * q_len + t) * q_ts + h * head_dim;
  }
  // K/V row of query head h (the K/V head of its group).
  template <typename T>
  T* kv_row(T* kv, int64_t b, int64_t t, int64_t h) const {
    return kv + (b * kv_len + t) * kv_ts + h / (heads / kv_heads) * head_dim;
  }
  template <typename T>
  T* o_row(T* o, int64_t b, int64_t t, int64_t h) const {
    return o + (b * q_len + t) * o_ts + h * head_dim;
  }
  template <typename T>
  T* lse_row(T* lse, int64_t b, int64_t h) const {
    return lse + (b * heads + h) * q_len;
  }
  // Number of leading keys of the block that query i sees: with the causal
  // mask, keys at global positions <= the query's (q_pos0 + i).
  int64_t visible_keys(int64_t i) const {
    if (!causal) return kv_len;
    return std::clamp<int64_t>(q_pos0 + i - kv_pos0 + 1, 0, kv_len);
  }
  // First query that sees key j (q_len when none does).
  int64_t first_query_seeing(int64_t j) const {
    if (!causal) return 0;
    return std::clamp<int64_t>(kv_pos0 + j - q_pos0, 0, q_len);
  }
};

// The shape of a descriptor that sdk::validate_attention_forward/backward accepted.
inline AttentionShape attention_shape(const dfm_attention_desc& d) {
  return AttentionShape{d.batch,          d.heads,           d.head_dim,       d.q_len,  d.kv_len,
                        dfm_attention_kv_heads(&d), d.q_token_stride, d.kv_token_stride, d.o_token_stride,
                        d.q_pos0,         d.kv_pos0,         d.causal != 0,    d.scale};
}

// The [act] tensors of one call as fp32 (fp32_staging.hpp), read with the
// strides of the call's shape `given`. Staged copies are dense, so each sets
// the token stride of its kind in `view` (queries: q and dq; keys: k, v, dk and
// dv; outputs: out and dout); a call's [act] tensors share one dtype, so the
// views of a kind agree.
inline float* stage_queries(Fp32Staging& s, Fp32Staging::Use use, const float* x, const AttentionShape& given,
                            AttentionShape& view) {
  const Fp32Rows rows = s.activation_rows(use, x, given.batch * given.q_len, given.heads * given.head_dim, given.q_ts);
  view.q_ts = rows.ld;
  return rows.data;
}
inline float* stage_keys(Fp32Staging& s, Fp32Staging::Use use, const float* x, const AttentionShape& given,
                         AttentionShape& view) {
  const Fp32Rows rows =
      s.activation_rows(use, x, given.batch * given.kv_len, given.kv_heads * given.head_dim, given.kv_ts);
  view.kv_ts = rows.ld;
  return rows.data;
}
inline float* stage_outputs(Fp32Staging& s, Fp32Staging::Use use, const float* x, const AttentionShape& given,
                            AttentionShape& view) {
  const Fp32Rows rows = s.activation_rows(use, x, given.batch * given.q_len, given.heads * given.head_dim, given.o_ts);
  view.o_ts = rows.ld;
  return rows.data;
}

// Q, K and V of one call, read as fp32.
struct Fp32Inputs {
  const float *q, *k, *v;
};
inline Fp32Inputs stage_inputs(Fp32Staging& s, const float* q, const float* k, const float* v,
                               const AttentionShape& given, AttentionShape& view) {
  using Use = Fp32Staging::Use;
  return {stage_queries(s, Use::kRead, q, given, view), stage_keys(s, Use::kRead, k, given, view),
          stage_keys(s, Use::kRead, v, given, view)};
}

// Copies keys (or values) j0 .. j0 + count - 1 of head h into tile[d * kKeyTile + j],
// zeros past count, so score loops always run over a full tile of keys.
inline void load_transposed_tile(const AttentionShape& a, const float* kv, int64_t b, int64_t h, int64_t j0,
                                 int64_t count, float* tile) {
  for (int64_t j = 0; j < kKeyTile; ++j) {
    if (j < count) {
      const float* row = a.kv_row(kv, b, j0 + j, h);
      for (int64_t d = 0; d < a.head_dim; ++d) tile[d * kKeyTile + j] = row[d];
    } else {
      for (int64_t d = 0; d < a.head_dim; ++d) tile[d * kKeyTile + j] = 0.0f;
    }
  }
}

// Rows 0 .. count - 1 that row_of(r) points at (head_dim floats each) into
// tile[r * dp + d], zero-padded to dp columns and `rows` rows.
template <typename RowOf>
void load_rows(RowOf&& row_of, int64_t count, int64_t rows, int64_t head_dim, int64_t dp, float* tile) {
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = tile + r * dp;
    const float* src = r < count ? row_of(r) : nullptr;
    for (int64_t d = 0; d < dp; ++d) dst[d] = (src && d < head_dim) ? src[d] : 0.0f;
  }
}

}  // namespace dfm::cpu

#endif  // DFM_PLUGINS_COMPUTE_CPU_ATTENTION_HPP
