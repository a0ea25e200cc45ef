#include "dfm/core/models/llama/llama_model.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace dfm {

LlamaModel::LlamaModel(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles,
                       const LlamaShape& shape, int64_t max_batch, ModelLayout layout)
    : ChunkedModel(backend, params, roles, std::move(layout), max_batch, shape.seq_len, shape.d_model),
      shape_(shape),
      vocab_(ops_, shape.vocab_size, shape.d_model, max_batch * shape.seq_len),
      q_local_(shape.q_dim() / roles.tensor->size()),
      kv_local_(shape.kv_dim() / roles.tensor->size()),
      qkv_width_(q_local_ + 2 * kv_local_),
      ffn_local_(shape.ffn_dim / roles.tensor->size()),
      root_{&params.info("model.embed_tokens.weight"), &params.info("model.norm.weight"),
            &params.info(shape.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight")} {
  for (int64_t l = 0; l < shape.n_layer; ++l) {
    std::vector<const ParamInfo*> members;
    for (const char* suffix : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                               "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                               "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      members.push_back(&params.info(llama_layer_name(l, suffix)));
    layer_params_.push_back(std::move(members));
  }
  allocate_slots([&](const ModelChunk& chunk) { return make_slot(chunk, max_batch); });
  const int64_t R = max_batch * shape.seq_len;
  d_ln_ = ActivationBuffer(backend, R * shape.d_model);
  d_qkv_ = ActivationBuffer(backend, R * qkv_width_);
  d_attn_ = ActivationBuffer(backend, R * q_local_);
  d_gate_ = ActivationBuffer(backend, R * ffn_local_);
  d_up_ = ActivationBuffer(backend, R * ffn_local_);
  d_act_ = ActivationBuffer(backend, R * ffn_local_);
}

LlamaSlot LlamaModel::make_slot(const ModelChunk& chunk, int64_t max_batch) {
  const int64_t R = max_batch * shape_.seq_len, O = ops_.outside_capacity(), C = shape_.d_model;
  const int64_t heads = shape_.n_head / ops_.tensor().size();
  auto act = [&](int64_t n) { return activations(n); };
  auto stat = [&](int64_t n) { return statistics(n); };
  LlamaSlot a;
  for (int64_t l = 0; l < chunk.layers; ++l)
    a.layers.push_back({act(O * C), act(R * C), stat(O), act(R * qkv_width_), act(R * q_local_),
                        stat(max_batch * heads * shape_.seq_len), act(O * C), act(R * C), stat(O),
                        act(R * ffn_local_), act(R * ffn_local_), act(R * ffn_local_)});
  a.output = act(O * C);
  a.output_grad = act(O * C);
  if (chunk.head) {
    a.normed = act(R * C);
    a.norm_rstd = stat(O);
    a.logits = act(R * vocab_.logits_stride());
    a.losses = stat(R);
  }
  return a;
}

LlamaModel::LayerWeights LlamaModel::weights_of(int64_t layer, bool grads) const {
  const auto& m = layer_params_[static_cast<size_t>(layer)];
  auto member = [&](size_t i) { return grads ? ops_.grad(*m[i]) : ops_.param(*m[i]); };
  return {member(0), member(1), member(2), member(3), member(4), member(5), member(6), member(7), member(8)};
}

const float* LlamaModel::head_weight() const { return ops_.param(*root_.head); }
float* LlamaModel::head_grad() const { return ops_.grad(*root_.head); }

// Q, K and V are read in place from the fused row; query head h of this rank
// reads K/V head h / (n_head / n_kv_head) of it, the grouping being the same
// on every slice (both head counts divide by tp).
dfm_attention_desc LlamaModel::attention() const {
  dfm_attention_desc d = ops_.attention_desc(shape_.n_head / ops_.tensor().size(), shape_.head_dim(), true);
  d.kv_heads = shape_.n_kv_head / ops_.tensor().size();
  d.q_token_stride = d.kv_token_stride = qkv_width_;
  d.o_token_stride = q_local_;
  return d;
}

void LlamaModel::rmsnorm_into_region(const float* x, const float* w, float* rstd, float* inside) {
  ops_.into_region(inside, shape_.d_model, [&](float* normed) {
    ops_.check(ops_.kernels().rmsnorm_forward(ops_.ctx(), normed, rstd, x, w, ops_.outside_rows(), shape_.d_model,
                                              static_cast<float>(shape_.norm_eps)),
               "rmsnorm");
  });
}

// The RMSNorm kernels accumulate into din: the residual passes d_stream
// through and the norm adds its part.
void LlamaModel::rmsnorm_backward(float* d_stream, float* dw, const float* d_normed, const float* x, const float* w,
                                  const float* rstd) {
  ops_.check(ops_.kernels().rmsnorm_backward(ops_.ctx(), d_stream, dw, d_normed, x, w, rstd, ops_.outside_rows(),
                                             shape_.d_model),
             "rmsnorm_backward");
}

// Every inside row carries its token's position in the sequence (its global
// position under context parallelism), so a chunk rotates as the whole would.
void LlamaModel::rope(float* x, int64_t heads, bool backward) {
  const dfm_compute_v1& k = ops_.kernels();
  const auto turn = backward ? k.rope_backward : k.rope_forward;
  ops_.check(turn(ops_.ctx(), x, ops_.inside_positions(), ops_.rows(), heads, shape_.head_dim(), qkv_width_,
                  static_cast<float>(shape_.rope_theta)),
             backward ? "rope_backward" : "rope");
}

// ---- forward ----

void LlamaModel::embed_forward(LlamaSlot& s, const MicroBatch& in) {
  vocab_.embed(in.tokens, ops_.param(*root_.embed), s.input());
}

void LlamaModel::block_forward(LlamaSlot& s, int64_t i, int64_t layer) {
  LlamaSlot::Layer& a = s.layers[static_cast<size_t>(i)];
  float* block_out = i + 1 < static_cast<int64_t>(s.layers.size())
                         ? s.layers[static_cast<size_t>(i + 1)].residual_in.data()
                         : s.output.data();
  ComputeBackend& backend = ops_.backend();
  const int64_t C = shape_.d_model, Q = q_local_, KV = kv_local_, F = ffn_local_, rows = ops_.outside_rows();
  const int64_t heads = Q / shape_.head_dim(), kv_heads = KV / shape_.head_dim();
  const LayerWeights w = weights_of(layer, false);

  // Attention: column-parallel Q, K, V (this rank's heads) into one row, rotated; row-parallel output projection.
  rmsnorm_into_region(a.residual_in.data(), w.ln1, a.ln1_rstd.data(), a.ln1.data());
  ops_.linear_nt_forward(a.qkv.data(), qkv_width_, a.ln1.data(), w.q, C, Q);
  ops_.linear_nt_forward(a.qkv.at(Q), qkv_width_, a.ln1.data(), w.k, C, KV);
  ops_.linear_nt_forward(a.qkv.at(Q + KV), qkv_width_, a.ln1.data(), w.v, C, KV);
  rope(a.qkv.data(), heads, false);
  rope(a.qkv.at(Q), kv_heads, false);
  ops_.attention_forward(attention(), a.qkv.data(), a.qkv.at(Q), a.qkv.at(Q + KV), a.attn.data(), a.lse.data());
  const float* attn_out = ops_.row_parallel_nt_forward(a.attn.data(), w.o, Q);
  backend.add_activations(a.residual_mid.data(), a.residual_in.data(), attn_out, rows * C);

  // MLP: column-parallel gate and up, SwiGLU, row-parallel down.
  rmsnorm_into_region(a.residual_mid.data(), w.ln2, a.ln2_rstd.data(), a.ln2.data());
  ops_.linear_nt_forward(a.gate.data(), F, a.ln2.data(), w.gate, C, F);
  ops_.linear_nt_forward(a.up.data(), F, a.ln2.data(), w.up, C, F);
  ops_.check(ops_.kernels().swiglu_forward(ops_.ctx(), a.act.data(), a.gate.data(), a.up.data(), ops_.rows() * F),
             "swiglu");
  const float* mlp_out = ops_.row_parallel_nt_forward(a.act.data(), w.down, F);
  backend.add_activations(block_out, a.residual_mid.data(), mlp_out, rows * C);
}

void LlamaModel::head_forward(LlamaSlot& s) {
  rmsnorm_into_region(s.output.data(), ops_.param(*root_.norm), s.norm_rstd.data(), s.normed.data());
  // logits = normed @ head^T over this rank's vocabulary rows (the whole logits never exist on one rank).
  vocab_.logits(s.normed.data(), head_weight(), s.logits.data());
}

const float* LlamaModel::head_loss(LlamaSlot& s, const MicroBatch& in, float grad_scale) {
  vocab_.loss(s.logits.data(), in.targets, s.losses.data(), grad_scale);
  return s.losses.data();
}

void LlamaModel::row_logits(int32_t chunk, int64_t row, float* out) {
  if (!layout().chunks[static_cast<size_t>(chunk)].head)
    throw std::logic_error("LlamaModel::row_logits: chunk " + std::to_string(chunk) + " has no head");
  vocab_.row_logits(slot_of(chunk, 0).logits.data(), row, out);
}

// ---- backward ----

// d_stream = dLoss/d(the stream before the final norm), from the logits' gradient.
void LlamaModel::head_backward(LlamaSlot& s, float* d_stream) {
  vocab_.logits_backward(s.logits.data(), s.normed.data(), head_weight(), head_grad(), d_ln_.data());
  const float* d_normed = ops_.enter_backward(d_ln_.data());
  ops_.backend().fill_activations(d_stream, 0.0f, ops_.outside_rows() * shape_.d_model);
  rmsnorm_backward(d_stream, ops_.grad(*root_.norm), d_normed, s.output.data(), ops_.param(*root_.norm),
                   s.norm_rstd.data());
}

// d_stream holds dLoss/d(block output), outside rows; it leaves as dLoss/d(block input).
void LlamaModel::block_backward(LlamaSlot& s, int64_t i, int64_t layer, float* d_stream) {
  LlamaSlot::Layer& a = s.layers[static_cast<size_t>(i)];
  const int64_t C = shape_.d_model, Q = q_local_, KV = kv_local_, F = ffn_local_;
  const int64_t heads = Q / shape_.head_dim(), kv_heads = KV / shape_.head_dim();
  const LayerWeights w = weights_of(layer, false);
  const LayerWeights g = weights_of(layer, true);

  // MLP branch: down, SwiGLU, then gate and up, whose input gradients add up.
  const float* d_mlp_out = ops_.exit_backward(d_stream);
  ops_.linear_nt_backward(d_act_.data(), false, g.down, d_mlp_out, C, a.act.data(), w.down, F, C);
  ops_.check(ops_.kernels().swiglu_backward(ops_.ctx(), d_gate_.data(), d_up_.data(), d_act_.data(), a.gate.data(),
                                            a.up.data(), ops_.rows() * F),
             "swiglu_backward");
  ops_.linear_nt_backward(d_ln_.data(), false, g.gate, d_gate_.data(), F, a.ln2.data(), w.gate, C, F);
  ops_.linear_nt_backward(d_ln_.data(), true, g.up, d_up_.data(), F, a.ln2.data(), w.up, C, F);
  rmsnorm_backward(d_stream, g.ln2, ops_.enter_backward(d_ln_.data()), a.residual_mid.data(), w.ln2,
                   a.ln2_rstd.data());

  // Attention branch: o, attention, the rotations turned back, then Q, K and V.
  const float* d_attn_out = ops_.exit_backward(d_stream);
  ops_.linear_nt_backward(d_attn_.data(), false, g.o, d_attn_out, C, a.attn.data(), w.o, Q, C);
  ops_.backend().fill_activations(d_qkv_.data(), 0.0f, ops_.rows() * qkv_width_);
  ops_.attention_backward(attention(), a.qkv.data(), a.qkv.at(Q), a.qkv.at(Q + KV), a.attn.data(), d_attn_.data(),
                          a.lse.data(), d_qkv_.data(), d_qkv_.at(Q), d_qkv_.at(Q + KV));
  rope(d_qkv_.data(), heads, true);
  rope(d_qkv_.at(Q), kv_heads, true);
  ops_.linear_nt_backward(d_ln_.data(), false, g.q, d_qkv_.data(), qkv_width_, a.ln1.data(), w.q, C, Q);
  ops_.linear_nt_backward(d_ln_.data(), true, g.k, d_qkv_.at(Q), qkv_width_, a.ln1.data(), w.k, C, KV);
  ops_.linear_nt_backward(d_ln_.data(), true, g.v, d_qkv_.at(Q + KV), qkv_width_, a.ln1.data(), w.v, C, KV);
  rmsnorm_backward(d_stream, g.ln1, ops_.enter_backward(d_ln_.data()), a.residual_in.data(), w.ln1,
                   a.ln1_rstd.data());
}

void LlamaModel::embed_backward(LlamaSlot&, const MicroBatch& in, float* d_stream) {
  vocab_.embed_backward(in.tokens, ops_.grad(*root_.embed), d_stream);
}

}  // namespace dfm
