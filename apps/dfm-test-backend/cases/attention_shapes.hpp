// Shapes of the attention cases and their descriptors.
#ifndef DFM_TEST_BACKEND_ATTENTION_SHAPES_HPP
#define DFM_TEST_BACKEND_ATTENTION_SHAPES_HPP

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "dfm/compute.h"

namespace dfm::kernel_test {

struct AttentionCase {
  int64_t batch, heads, head_dim, q_len, kv_len, q_pos0, kv_pos0;
  int causal;
  int64_t pad;  // extra elements per token in Q, K/V and O (strided layouts)
  int64_t kv_heads = 0;  // grouped-query attention (ABI 1.7); 0: as many as heads
};

inline dfm_attention_desc make_desc(const AttentionCase& c) {
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = c.batch;
  d.heads = c.heads;
  d.head_dim = c.head_dim;
  d.q_len = c.q_len;
  d.kv_len = c.kv_len;
  d.q_token_stride = c.heads * c.head_dim + c.pad;
  d.kv_heads = c.kv_heads;
  d.kv_token_stride = dfm_attention_kv_heads(&d) * c.head_dim + 2 * c.pad;
  d.o_token_stride = c.heads * c.head_dim + 3 * c.pad;
  d.q_pos0 = c.q_pos0;
  d.kv_pos0 = c.kv_pos0;
  d.causal = c.causal;
  d.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  return d;
}

inline std::string describe_attention(const AttentionCase& c) {
  std::ostringstream s;
  s << "batch " << c.batch << " heads " << c.heads << " head_dim " << c.head_dim << " q " << c.q_len << "@"
    << c.q_pos0 << " kv " << c.kv_len << "@" << c.kv_pos0 << (c.causal ? " causal" : " full") << " pad " << c.pad;
  if (c.kv_heads > 0) s << " kv_heads " << c.kv_heads;
  return s.str();
}

inline size_t q_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.q_len * d.q_token_stride); }
inline size_t kv_elements(const dfm_attention_desc& d) {
  return static_cast<size_t>(d.batch * d.kv_len * d.kv_token_stride);
}
inline size_t o_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.q_len * d.o_token_stride); }
inline size_t lse_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.heads * d.q_len); }

// Tokens begin .. end - 1 of each batch element of a K or V tensor laid out
// as `d` says, as a dense tensor of its own: a K/V block as a ring peer sends it.
template <typename T>
std::vector<T> kv_block(const std::vector<T>& kv, const dfm_attention_desc& d, int64_t begin, int64_t end) {
  std::vector<T> block;
  for (int64_t b = 0; b < d.batch; ++b)
    block.insert(block.end(), kv.begin() + (b * d.kv_len + begin) * d.kv_token_stride,
                 kv.begin() + (b * d.kv_len + end) * d.kv_token_stride);
  return block;
}

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_ATTENTION_SHAPES_HPP
