// GPT-2 forward and backward, block by block on the compute backend's
// kernels (llm.c's layout: every gradient an explicit kernel call whose math
// reads top to bottom). The walk over chunks, slots and unit events is
// ChunkedModel's; the tensor-parallel edges, GEMMs and attention are
// ModelOps'; the vocabulary-parallel embedding, tied head and loss are
// VocabParallel's. This file is only GPT-2 (docs/models.md has its formulas).
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/models/chunked_model.hpp"
#include "dfm/core/models/gpt2/gpt2_params.hpp"
#include "dfm/core/models/vocab_parallel.hpp"

namespace dfm {

// One micro-batch's activations of one chunk. Outside rows are [outside, C],
// inside rows [inside, width] (model_ops.hpp); activations and their
// gradients are in the backend's activation dtype, row statistics (mean,
// rstd, lse) and losses in fp32 (compute.h).
struct Gpt2Slot {
  struct Layer {
    ActivationBuffer residual_in;            // [outside, C] the stream entering the block
    ActivationBuffer ln1;                    // [inside, C]
    DeviceBuffer<float> ln1_mean, ln1_rstd;  // [outside]
    ActivationBuffer qkv;                    // [inside, 3C/tp]: this rank's heads of Q, K, V
    ActivationBuffer attn;                   // [inside, C/tp]
    DeviceBuffer<float> lse;                 // [B, H/tp, T]
    ActivationBuffer residual_mid;           // [outside, C] after the attention residual
    ActivationBuffer ln2;                    // [inside, C]
    DeviceBuffer<float> ln2_mean, ln2_rstd;
    ActivationBuffer fc_pre, fc_act;  // [inside, 4C/tp]
  };
  std::vector<Layer> layers;     // the chunk's blocks
  ActivationBuffer output;       // [outside, C] after the last block
  ActivationBuffer output_grad;  // [outside, C] dLoss/d(output); the backward's running gradient
  ActivationBuffer lnf, logits;  // the head's
  DeviceBuffer<float> lnf_mean, lnf_rstd, losses;
  float* input() const { return layers.empty() ? output.data() : layers.front().residual_in.data(); }
};

class Gpt2Model final : public ChunkedModel<Gpt2Slot> {
 public:
  // Activations for up to max_batch sequences of shape.seq_len tokens;
  // `params` hold this rank's slices of gpt_param_infos(shape).
  Gpt2Model(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, const GptShape& shape,
            int64_t max_batch, ModelLayout layout);

  void row_logits(int32_t chunk, int64_t row, float* out) override;

 private:
  struct LayerWeights {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fc_proj_w, *fc_proj_b;
  };
  Gpt2Slot make_slot(const ModelChunk& chunk, int64_t max_batch);
  // The block's parameters (or gradients) where its unit is materialised now.
  LayerWeights weights_of(int64_t layer, bool grads) const;
  // x (outside rows) -> LayerNorm -> entered into the region as `inside` (all rows).
  void layernorm_into_region(const float* x, const float* w, const float* b, float* mean, float* rstd, float* inside);
  // d_stream += LayerNorm backward of d_normed (outside rows) at its input x.
  void layernorm_backward(float* d_stream, float* dw, float* db, const float* d_normed, const float* x, const float* w,
                          const float* mean, const float* rstd);
  dfm_attention_desc attention() const;

  void embed_forward(Gpt2Slot& s, const MicroBatch& in) override;
  void block_forward(Gpt2Slot& s, int64_t i, int64_t layer) override;
  void head_forward(Gpt2Slot& s) override;
  const float* head_loss(Gpt2Slot& s, const MicroBatch& in, float grad_scale) override;
  void head_backward(Gpt2Slot& s, float* d_stream) override;
  void block_backward(Gpt2Slot& s, int64_t i, int64_t layer, float* d_stream) override;
  void embed_backward(Gpt2Slot& s, const MicroBatch& in, float* d_stream) override;

  GptShape shape_;
  VocabParallel vocab_;
  // This rank's slice widths: channels of its heads and MLP columns.
  int64_t local_c_, local_fc_;
  struct RootParams {  // the root unit's parameters, looked up once
    const ParamInfo *wte, *wpe, *ln_f_weight, *ln_f_bias;
  } root_;
  std::vector<std::vector<const ParamInfo*>> layer_params_;  // per block, in LayerWeights order
  // Gradient scratch on inside rows.
  ActivationBuffer d_ln_, d_qkv_, d_attn_, d_fc_;
};

}  // namespace dfm
