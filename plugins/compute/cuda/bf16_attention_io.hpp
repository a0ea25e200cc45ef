// The traffic around cuDNN's attention (cudnn_attention.hpp): the ABI's
// strided activations (fp32 or bf16: the context's activation type) in,
// dense bf16 operands for cuDNN, and cuDNN's bf16 results back into the
// ABI's outputs. Rows are tokens
// (batch * tokens of them), each `width` = heads * head_dim values wide; an
// fp32 row starts `token_stride` elements after the previous one, a bf16 row
// right after it. Every function issues one kernel on the context's
// stream.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_BF16_ATTENTION_IO_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_BF16_ATTENTION_IO_HPP

#include <cstdint>

#include "cuda_backend.hpp"

namespace dfm::cuda {

// Bytes of one bf16 value.
constexpr size_t kBf16Bytes = 2;

// dst (bf16) = src (activations) rounded to nearest even.
void pack_bf16(const Args& args, void* dst, const float* src, int64_t rows, int64_t width, int64_t token_stride);

// dst (activations) += src (bf16).
void add_bf16(const Args& args, float* dst, const void* src, int64_t rows, int64_t width, int64_t token_stride);

// One K/V block's attention result — o (bf16, dense) and its log-sum-exp
// `block_lse` ([batch, heads, q_len], fp32) — into the ABI's out (token
// stride o_token_stride) and lse: copied when !accumulate, else merged with
// what they hold (out = weighted mean of the two by exp(lse), lse = their
// log-add-exp; a row that saw no key so far has lse = -inf and takes the block's).
void merge_block_result(const Args& args, const dfm_attention_desc& d, float* out, float* lse, const void* o,
                        const float* block_lse, bool accumulate);

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_BF16_ATTENTION_IO_HPP
