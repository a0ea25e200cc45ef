// Shapes of attention test cases and their descriptors, shared by the
// forward and backward kernel tests.
#ifndef DFM_TESTS_ATTENTION_CASES_HPP
#define DFM_TESTS_ATTENTION_CASES_HPP

#include <cmath>
#include <cstdint>
#include <vector>

#include "dfm/compute.h"

namespace dfm::test {

struct AttentionCase {
  int64_t batch, heads, head_dim, q_len, kv_len, q_pos0, kv_pos0;
  int causal;
  int64_t pad;  // extra elements per token in Q, K/V and O (strided layouts)
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
  d.kv_token_stride = c.heads * c.head_dim + 2 * c.pad;
  d.o_token_stride = c.heads * c.head_dim + 3 * c.pad;
  d.q_pos0 = c.q_pos0;
  d.kv_pos0 = c.kv_pos0;
  d.causal = c.causal;
  d.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  return d;
}

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

}  // namespace dfm::test

#endif  // DFM_TESTS_ATTENTION_CASES_HPP
