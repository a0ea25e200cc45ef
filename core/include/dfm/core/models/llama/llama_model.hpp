// The Llama family's forward and backward, block by block on the compute
// backend's kernels (llm.c's layout: every gradient an explicit kernel call
// whose math reads top to bottom). Pre-norm blocks with RMSNorm, rotary
// positions on Q and K, grouped-query causal attention, a SwiGLU MLP, no
// biases, an untied LM head by default (docs/models.md has the formulas).
// The walk over chunks and slots is ChunkedModel's; tensor-parallel edges,
// GEMMs and attention are ModelOps'; the vocabulary-parallel embedding, head
// and loss are VocabParallel's. This file is only the model.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/models/chunked_model.hpp"
#include "dfm/core/models/llama/llama_params.hpp"
#include "dfm/core/models/vocab_parallel.hpp"

namespace dfm {

// One micro-batch's activations of one chunk: outside rows [outside, C],
// inside rows [inside, width] (model_ops.hpp), in the backend's activation
// dtype; row statistics (rstd, lse) and losses in fp32.
struct LlamaSlot {
  struct Layer {
    ActivationBuffer residual_in;  // [outside, C] the stream entering the block
    ActivationBuffer ln1;          // [inside, C] RMSNorm of it, inside the region
    DeviceBuffer<float> ln1_rstd;  // [outside]
    ActivationBuffer qkv;          // [inside, (H + 2 KV) hd / tp]: this rank's Q | K | V heads, Q and K rotated
    ActivationBuffer attn;         // [inside, H hd / tp]
    DeviceBuffer<float> lse;       // [B, H/tp, T]
    ActivationBuffer residual_mid;  // [outside, C] after the attention residual
    ActivationBuffer ln2;           // [inside, C]
    DeviceBuffer<float> ln2_rstd;
    ActivationBuffer gate, up, act;  // [inside, F/tp]: the MLP's two projections and silu(gate) * up
  };
  std::vector<Layer> layers;     // the chunk's blocks
  ActivationBuffer output;       // [outside, C] after the last block
  ActivationBuffer output_grad;  // [outside, C] the backward's running gradient
  ActivationBuffer normed, logits;  // the head's: the final RMSNorm (inside rows), this rank's vocabulary band
  DeviceBuffer<float> norm_rstd, losses;
  float* input() const { return layers.empty() ? output.data() : layers.front().residual_in.data(); }
};

class LlamaModel final : public ChunkedModel<LlamaSlot> {
 public:
  // Activations for up to max_batch sequences of shape.seq_len tokens;
  // `params` hold this rank's slices of llama_param_infos(shape).
  LlamaModel(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, const LlamaShape& shape,
             int64_t max_batch, ModelLayout layout);

  void row_logits(int32_t chunk, int64_t row, float* out) override;

 private:
  struct LayerWeights {
    float *ln1, *q, *k, *v, *o, *ln2, *gate, *up, *down;
  };
  LlamaSlot make_slot(const ModelChunk& chunk, int64_t max_batch);
  // The block's parameters (or gradients) where its unit is materialised now.
  LayerWeights weights_of(int64_t layer, bool grads) const;
  // x (outside rows) -> RMSNorm -> entered into the region as `inside` (all rows).
  void rmsnorm_into_region(const float* x, const float* w, float* rstd, float* inside);
  // d_stream += RMSNorm backward of d_normed (outside rows) at its input x.
  void rmsnorm_backward(float* d_stream, float* dw, const float* d_normed, const float* x, const float* w,
                        const float* rstd);
  // RoPE on `heads` heads starting at `x` in every inside row of a Q | K | V buffer (backward: turned back).
  void rope(float* x, int64_t heads, bool backward);
  dfm_attention_desc attention() const;
  const float* head_weight() const;  // lm_head, or the embedding when tied
  float* head_grad() const;

  void embed_forward(LlamaSlot& s, const MicroBatch& in) override;
  void block_forward(LlamaSlot& s, int64_t i, int64_t layer) override;
  void head_forward(LlamaSlot& s) override;
  const float* head_loss(LlamaSlot& s, const MicroBatch& in, float grad_scale) override;
  void head_backward(LlamaSlot& s, float* d_stream) override;
  void block_backward(LlamaSlot& s, int64_t i, int64_t layer, float* d_stream) override;
  void embed_backward(LlamaSlot& s, const MicroBatch& in, float* d_stream) override;

  LlamaShape shape_;
  VocabParallel vocab_;
  // This rank's slice widths: its query heads' and key/value heads' channels,
  // the fused Q | K | V row, and its MLP columns.
  int64_t q_local_, kv_local_, qkv_width_, ffn_local_;
  struct RootParams {  // the root unit's parameters, looked up once
    const ParamInfo *embed, *norm, *head;  // head: lm_head, or the embedding when tied
  } root_;
  std::vector<std::vector<const ParamInfo*>> layer_params_;  // per block, in LayerWeights order
  // Gradient scratch on inside rows.
  ActivationBuffer d_ln_, d_qkv_, d_attn_, d_gate_, d_up_, d_act_;
};

}  // namespace dfm
