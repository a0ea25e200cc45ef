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
//
// Tensor parallel (strategy.h's tensor slots) is written into the same code:
// this rank computes with its slices of the weights (whole heads of the
// attention, a band of the MLP, a band of the vocabulary) and marks where a
// tensor-parallel region begins and ends; the TensorSplit does the
// communication at those edges. Without a split every edge is a no-op in
// place and the code is the plain single-device model.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/models/gpt2/gpt_params.hpp"
#include "dfm/core/parallel/param_placement.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/parallel/tensor_split.hpp"

namespace dfm {

// What this rank runs of the model: its chunks (pipeline.hpp; the whole model
// as one chunk without a pipeline) and how many micro-batches each chunk
// keeps the activations of at once (a pipeline schedule's in-flight count).
struct ModelLayout {
  std::vector<ModelChunk> chunks;
  std::vector<int64_t> slots;  // per chunk
  static ModelLayout whole(int64_t n_layer) { return {{ModelChunk{0, n_layer, true, true}}, {1}}; }
};

class GptModel {
 public:
  // Activations are sized for up to max_batch sequences of shape.seq_len tokens.
  // `sequence`, when given, runs attention during training steps (context
  // parallel: each rank holds some tokens of every sequence); forward-only
  // passes (sampling) hold whole sequences and use the backend's kernel.
  // `tensor`, when given, is the tensor split `params` were sliced for.
  // `layout` (default: the whole model, one micro-batch) says which chunks
  // this rank runs.
  GptModel(ComputeBackend& backend, GptParams& params, ParamPlacement& placement, const GptShape& shape,
           int64_t max_batch, SequenceSplit* sequence = nullptr, const TensorSplit* tensor = nullptr,
           ModelLayout layout = {});

  // ---- one chunk of one micro-batch in an activation slot (pipeline steps) ----
  // Forward of `chunk` on the micro-batch held in `slot`: tokens and
  // positions (device int32 [batch * tokens_per_seq], tokens <= seq_len) feed
  // the embedding; a chunk without it reads its input from chunk_input.
  // `step` is passed to the placement's events (NULL for a forward-only pass).
  void forward_chunk(int32_t chunk, int32_t slot, const int32_t* tokens, const int32_t* positions, int64_t batch,
                     int64_t tokens_per_seq, const dfm_step_info* step);
  // The head's per-token cross entropy against targets (device int32); the
  // logits become grad_scale * dLoss/dlogits. Returns the device buffer of
  // per-token losses (every tensor slice holds all of them).
  const float* chunk_loss(int32_t chunk, int32_t slot, const int32_t* targets, float grad_scale);
  // Backward of `chunk` on the micro-batch in `slot`; accumulates dLoss/dparams
  // into the units' full_grad. A chunk without the head starts from the
  // gradient in chunk_output_gradient.
  void backward_chunk(int32_t chunk, int32_t slot, const int32_t* tokens, const dfm_step_info* step);
  // The chunk's boundary tensors, [rows outside the tensor regions, d_model]:
  // its input (written by a receive before forward_chunk), its output (sent
  // after it), the gradient of its output (received before backward_chunk)
  // and of its input (sent after it).
  float* chunk_input(int32_t chunk, int32_t slot);
  float* chunk_output(int32_t chunk, int32_t slot);
  float* chunk_output_gradient(int32_t chunk, int32_t slot);
  float* chunk_input_gradient(int32_t chunk, int32_t slot);
  // Activations in each of those tensors for micro-batches of `batch` sequences of
  // `tokens_per_seq` tokens in a training pass.
  int64_t boundary_count(int64_t batch, int64_t tokens_per_seq) const;

  // ---- the whole model on one micro-batch (chunk 0, slot 0 of ModelLayout::whole) ----
  void forward(const int32_t* tokens, const int32_t* positions, int64_t batch, int64_t tokens_per_seq,
               const dfm_step_info* step = nullptr) {
    forward_chunk(0, 0, tokens, positions, batch, tokens_per_seq, step);
  }
  const float* loss(const int32_t* targets, float grad_scale) { return chunk_loss(0, 0, targets, grad_scale); }
  // Needs forward and loss first; `tokens` are the forward's, whose positions it kept.
  void backward(const int32_t* tokens, const dfm_step_info* step = nullptr) { backward_chunk(0, 0, tokens, step); }
  // The whole vocabulary's logits of `row` of the last forward of the head's
  // `chunk` in slot 0 (before loss), into host memory (vocab_size floats).
  // Collective under a tensor split.
  void row_logits(int32_t chunk, int64_t row, float* out);

  const GptShape& shape() const { return shape_; }
  const ModelLayout& layout() const { return layout_; }
  // Device bytes of the activation slots this rank allocated (activations in
  // the backend's activation dtype, row statistics in fp32).
  int64_t activation_bytes() const { return activation_bytes_; }

 private:
  struct LayerWeights {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fc_proj_w, *fc_proj_b;
  };
  // "outside" rows are this rank's tokens outside the tensor-parallel regions
  // (all of them, or its sequence-parallel share); "inside" rows are all of them.
  // Activations (and their gradients) are in the backend's activation dtype;
  // the row statistics (mean, rstd, lse) and losses are fp32 (compute.h).
  struct LayerActivations {
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
  // One micro-batch's activations of one chunk.
  struct SlotActivations {
    std::vector<LayerActivations> layers;  // the chunk's blocks
    ActivationBuffer output;               // [outside, C] after the last block
    ActivationBuffer output_grad;          // [outside, C] dLoss/d(output) (no head); backward's running gradient
    ActivationBuffer lnf, logits;          // the head's
    DeviceBuffer<float> lnf_mean, lnf_rstd, losses;
  };
  // Operand dtypes of the model's GEMMs: activations times weights into
  // activations (forward, input gradients), or activations times activations
  // into a weight gradient (fp32, accumulated).
  struct GemmDtypes {
    dfm_dtype a, b, c;
  };
  GemmDtypes into_activations() const {
    return {backend_.activation_dtype(), DFM_DTYPE_FP32, backend_.activation_dtype()};
  }
  GemmDtypes into_weight_grad() const {
    return {backend_.activation_dtype(), backend_.activation_dtype(), DFM_DTYPE_FP32};
  }

  SlotActivations make_slot(const ModelChunk& chunk, int64_t max_batch);
  SlotActivations& slot_of(int32_t chunk, int32_t slot);
  void set_micro_batch(int64_t batch, int64_t tokens_per_seq, const dfm_step_info* step);
  void block_forward(int64_t layer, LayerActivations& a, float* block_out, const dfm_step_info* step);
  void block_backward(int64_t layer, LayerActivations& a, float* d_res, const dfm_step_info* step);
  void head_forward(SlotActivations& act);
  void head_backward(SlotActivations& act, float* d_res);
  void embedding_backward(const int32_t* tokens, float* d_res);

  // The block's parameters (or gradients) where its unit is materialised now.
  LayerWeights weights_of(int64_t layer, bool grads) const;
  // A parameter (or its gradient) where its unit is materialised now.
  float* at(const ParamInfo& info, bool grad) const;
  dfm_attention_desc attention_desc() const;

  // One region edge from `in`: in place when both sides have the same rows
  // (no sequence parallel), else into `other_side`. Returns where the result is.
  float* edge(dfm_region_edge e, float* in, float* other_side, int64_t width);
  // The embedding lookup (a region exit: each slice adds its vocabulary rows).
  void embed(const int32_t* tokens, float* x);
  // x (outside rows) -> LayerNorm -> entered into the region as `inside` (all rows).
  void layernorm_into_region(const float* x, const float* w, const float* b, float* mean, float* rstd, float* inside);
  // in (inside rows, in_dim) @ w -> left the region -> + b; returns the outside rows.
  const float* row_parallel_forward(const float* in, const float* w, const float* b, int64_t in_dim);
  void vocab_parallel_loss(SlotActivations& act, const int32_t* targets, float grad_scale);
  // Gathers this rank's positions outside the regions (its sequence-parallel share).
  void select_outside_positions(const int32_t* positions);

  // out = in @ w for rows x in_dim times [in_dim, out_dim] (+ b when given, on the GEMM's epilogue).
  void linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim, int64_t out_dim);
  // pre = in @ w + b; out = GELU(pre): one GEMM with a bias-GELU epilogue.
  void linear_gelu_forward(float* out, float* pre, const float* in, const float* w, const float* b, int64_t in_dim,
                           int64_t out_dim);
  // din = dout @ w^T, times GELU'(gelu_input) when given (the GELU before this
  // linear, on the GEMM's epilogue); dw += in^T @ dout; db += colsum(dout) when db is given.
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                       int64_t in_dim, int64_t out_dim, float* gelu_input = nullptr);
  static dfm_matmul_desc matmul_desc(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                     const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                                     int64_t ldc);
  void matmul(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

  ComputeBackend& backend_;
  const dfm_compute_v1& k_;
  GptParams& params_;
  ParamPlacement& placement_;
  SequenceSplit* sequence_;
  const TensorSplit& tensor_;
  GptShape shape_;
  ModelLayout layout_;
  int64_t max_rows_, outside_capacity_;
  // This rank's slice sizes: channels of its heads, MLP columns, vocabulary rows and where they start.
  int64_t local_c_, local_fc_, local_vocab_, vocab_offset_, valid_vocab_;
  // The logits' row stride: local_vocab_ rounded up to a multiple of 64
  // elements (gpt_model.cpp says why); the padding columns belong to no one.
  int64_t logits_ld_;
  struct RootParams {  // the root unit's parameters, looked up once
    const ParamInfo *wte, *wpe, *ln_f_weight, *ln_f_bias;
  } root_;
  // Of the current micro-batch: rows inside the regions, tokens per sequence
  // inside, rows outside, and whether the sequence is split outside.
  int64_t batch_ = 0, tokens_ = 0, rows_ = 0, outside_rows_ = 0;
  bool sequence_split_ = false;
  int64_t activation_bytes_ = 0;

  std::vector<std::vector<const ParamInfo*>> layer_params_;  // per block, in LayerWeights order
  std::vector<std::vector<SlotActivations>> slots_;          // per chunk, per slot
  DeviceBuffer<float> row_max_, row_sums_;                   // vocabulary-parallel loss statistics
  DeviceBuffer<int32_t> outside_positions_;
  const int32_t* positions_outside_ = nullptr;  // of the current micro-batch
  // scratch: inside rows (partial sums before a region exit, gradients after a
  // region's backward exit) and outside rows (sequence-parallel shares).
  ActivationBuffer inside_scratch_, outside_scratch_, d_outside_;
  ActivationBuffer d_ln_, d_qkv_, d_attn_, d_fc_;
};

}  // namespace dfm
