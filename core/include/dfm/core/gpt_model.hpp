// GPT-2 forward and backward, written out block by block on the compute
// backend's kernels (llm.c's approach: no general autograd, every gradient is
// an explicit kernel call whose math can be read top to bottom).
//
// One micro-batch at a time: forward() keeps every activation the backward
// needs, loss() turns the logits into per-token losses and (in place) into
// their gradient, backward() accumulates parameter gradients into each unit's
// full_grad so micro-batches add up. Around each unit it tells the parameter
// placement (strategy.h's event order), which materialises the unit's
// parameters and reduces its gradients.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/compute_backend.hpp"
#include "dfm/core/gpt_params.hpp"
#include "dfm/core/param_placement.hpp"

namespace dfm {

class GptModel {
 public:
  // Activations are sized for up to max_batch sequences of shape.seq_len tokens.
  // `sequence`, when given, runs attention during training steps (context
  // parallel: each rank holds some tokens of every sequence); forward-only
  // passes (sampling) hold whole sequences and use the backend's kernel.
  GptModel(ComputeBackend& backend, GptParams& params, ParamPlacement& placement, const GptShape& shape,
           int64_t max_batch, SequenceSplit* sequence = nullptr);

  // tokens and positions: device int32 [batch * tokens]. tokens <= seq_len.
  // `step` is passed to the placement's events (NULL for a forward-only pass).
  void forward(const int32_t* tokens, const int32_t* positions, int64_t batch, int64_t tokens_per_seq,
               const dfm_step_info* step = nullptr);
  // Per-token cross entropy of the last forward against targets (device int32);
  // the logits become grad_scale * dLoss/dlogits. Returns the device buffer of
  // per-token losses.
  const float* loss(const int32_t* targets, float grad_scale);
  // Accumulates dLoss/dparams into the units' full_grad (needs forward and loss first).
  void backward(const int32_t* tokens, const int32_t* positions, const dfm_step_info* step = nullptr);

  // [batch * tokens, vocab] after forward (before loss).
  const float* logits() const { return logits_.data(); }
  const GptShape& shape() const { return shape_; }

 private:
  struct LayerWeights {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fc_proj_w, *fc_proj_b;
  };
  struct LayerActivations {
    DeviceBuffer<float> residual_in;  // [BT, C] the stream entering the block
    DeviceBuffer<float> ln1, ln1_mean, ln1_rstd;
    DeviceBuffer<float> qkv;          // [BT, 3C]
    DeviceBuffer<float> attn, lse;    // [BT, C], [B, H, T]
    DeviceBuffer<float> residual_mid; // [BT, C] after the attention residual
    DeviceBuffer<float> ln2, ln2_mean, ln2_rstd;
    DeviceBuffer<float> fc_pre, fc_act;  // [BT, 4C]
  };

  // The block's parameters (or gradients) where its unit is materialised now.
  LayerWeights weights_of(int64_t layer, bool grads) const;
  // A parameter (or its gradient) where its unit is materialised now.
  float* at(const ParamInfo& info, bool grad) const;
  dfm_attention_desc attention_desc() const;

  // out = in @ w + b for rows x in_dim times [in_dim, out_dim].
  void linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim, int64_t out_dim);
  // din = dout @ w^T; dw += in^T @ dout; db += colsum(dout).
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                       int64_t in_dim, int64_t out_dim);
  void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

  ComputeBackend& backend_;
  const dfm_compute_v1& k_;
  GptParams& params_;
  ParamPlacement& placement_;
  SequenceSplit* sequence_;
  GptShape shape_;
  int64_t max_rows_;
  struct RootParams {  // the root unit's parameters, looked up once
    const ParamInfo *wte, *wpe, *ln_f_weight, *ln_f_bias;
  } root_;
  int64_t batch_ = 0, tokens_ = 0, rows_ = 0;  // of the current micro-batch

  std::vector<std::vector<const ParamInfo*>> layer_params_;  // per block, in LayerWeights order
  std::vector<LayerActivations> layers_;
  DeviceBuffer<float> residual_out_, lnf_, lnf_mean_, lnf_rstd_, logits_, losses_;
  // backward scratch
  DeviceBuffer<float> d_residual_, d_ln_, d_qkv_, d_attn_, d_fc_;
};

}  // namespace dfm
