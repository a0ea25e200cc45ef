#include "dfm/core/gpt_model.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace dfm {

GptModel::GptModel(ComputeBackend& backend, GptParams& params, ParamPlacement& placement, const GptShape& shape,
                   int64_t max_batch, SequenceSplit* sequence)
    : backend_(backend),
      k_(backend.table()),
      params_(params),
      placement_(placement),
      sequence_(sequence),
      shape_(shape),
      max_rows_(max_batch * shape.seq_len),
      root_{&params.info("wte.weight"), &params.info("wpe.weight"), &params.info("ln_f.weight"),
            &params.info("ln_f.bias")} {
  const int64_t R = max_rows_, C = shape.d_model, H = shape.n_head;
  auto buf = [&](int64_t n) { return DeviceBuffer<float>(backend, n); };
  for (int64_t l = 0; l < shape.n_layer; ++l) {
    std::vector<const ParamInfo*> members;
    for (const char* suffix : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                               "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                               "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      members.push_back(&params.info(GptParams::layer_name(l, suffix)));
    layer_params_.push_back(std::move(members));
    layers_.push_back({buf(R * C), buf(R * C), buf(R), buf(R), buf(R * 3 * C), buf(R * C), buf(max_batch * H * shape.seq_len),
                       buf(R * C), buf(R * C), buf(R), buf(R), buf(R * 4 * C), buf(R * 4 * C)});
  }
  residual_out_ = buf(R * C);
  lnf_ = buf(R * C);
  lnf_mean_ = buf(R);
  lnf_rstd_ = buf(R);
  logits_ = buf(R * shape.vocab_size);
  losses_ = buf(R);
  d_residual_ = buf(R * C);
  d_ln_ = buf(R * C);
  d_qkv_ = buf(R * 3 * C);
  d_attn_ = buf(R * C);
  d_fc_ = buf(R * 4 * C);
}

GptModel::LayerWeights GptModel::weights_of(int64_t layer, bool grads) const {
  const auto& m = layer_params_[static_cast<size_t>(layer)];
  auto member = [&](size_t i) { return at(*m[i], grads); };
  return {member(0), member(1), member(2),  member(3),  member(4),  member(5),
          member(6), member(7), member(8),  member(9),  member(10), member(11)};
}

float* GptModel::at(const ParamInfo& info, bool grad) const {
  return grad ? params_.grad(info) : params_.param(info);
}

dfm_attention_desc GptModel::attention_desc() const {
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = batch_;
  d.heads = shape_.n_head;
  d.head_dim = shape_.head_dim();
  d.q_len = d.kv_len = tokens_;
  d.q_token_stride = d.kv_token_stride = 3 * shape_.d_model;  // read Q, K, V in place from the fused QKV
  d.o_token_stride = shape_.d_model;
  d.q_pos0 = d.kv_pos0 = 0;
  d.causal = 1;
  d.scale = 1.0f / std::sqrt(static_cast<float>(shape_.head_dim()));
  return d;
}

void GptModel::matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.trans_a = trans_a;
  d.trans_b = trans_b;
  d.m = m;
  d.n = n;
  d.k = k;
  d.alpha = 1.0f;
  d.beta = beta;
  d.a = a;
  d.lda = lda;
  d.b = b;
  d.ldb = ldb;
  d.c = c;
  d.ldc = ldc;
  d.batch = 1;
  backend_.check(k_.matmul(backend_.ctx(), &d), "matmul");
}

void GptModel::linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim,
                              int64_t out_dim) {
  matmul(false, false, rows_, out_dim, in_dim, in, in_dim, w, out_dim, 0.0f, out, out_dim);
  backend_.check(k_.bias_add(backend_.ctx(), out, b, rows_, out_dim), "bias_add");
}

void GptModel::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                               int64_t in_dim, int64_t out_dim) {
  matmul(false, true, rows_, in_dim, out_dim, dout, out_dim, w, out_dim, 0.0f, din, in_dim);
  matmul(true, false, in_dim, out_dim, rows_, in, in_dim, dout, out_dim, 1.0f, dw, out_dim);
  backend_.check(k_.bias_backward(backend_.ctx(), db, dout, rows_, out_dim), "bias_backward");
}

void GptModel::forward(const int32_t* tokens, const int32_t* positions, int64_t batch, int64_t tokens_per_seq,
                       const dfm_step_info* step) {
  if (tokens_per_seq < 1 || tokens_per_seq > shape_.seq_len || batch * tokens_per_seq > max_rows_)
    throw std::invalid_argument("GptModel::forward: batch " + std::to_string(batch) + " x " +
                                std::to_string(tokens_per_seq) + " tokens exceeds the activations' size");
  batch_ = batch;
  tokens_ = tokens_per_seq;
  rows_ = batch * tokens_per_seq;
  void* ctx = backend_.ctx();
  const int64_t C = shape_.d_model, V = shape_.vocab_size;

  placement_.on_unit(0, DFM_UNIT_FORWARD_BEGIN, step);
  float* x = layers_.empty() ? residual_out_.data() : layers_[0].residual_in.data();
  backend_.check(k_.embedding_forward(ctx, x, tokens, rows_, at(*root_.wte, false), V, 0, C, 0), "embedding");
  backend_.check(k_.embedding_forward(ctx, x, positions, rows_, at(*root_.wpe, false), shape_.seq_len, 0, C, 1),
                 "position embedding");

  const dfm_attention_desc attn = attention_desc();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto unit = static_cast<int32_t>(l + 1);
    placement_.on_unit(unit, DFM_UNIT_FORWARD_BEGIN, step);
    LayerActivations& a = layers_[l];
    const LayerWeights w = weights_of(static_cast<int64_t>(l), false);
    float* block_out = l + 1 < layers_.size() ? layers_[l + 1].residual_in.data() : residual_out_.data();

    backend_.check(k_.layernorm_forward(ctx, a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), a.residual_in.data(),
                                        w.ln1_w, w.ln1_b, rows_, C, shape_.ln_eps), "layernorm");
    linear_forward(a.qkv.data(), a.ln1.data(), w.qkv_w, w.qkv_b, C, 3 * C);
    const float* qkv = a.qkv.data();
    if (sequence_ && step)
      sequence_->attention_forward(attn, qkv, qkv + C, qkv + 2 * C, a.attn.data(), a.lse.data());
    else
      backend_.check(k_.attention_forward(ctx, &attn, qkv, qkv + C, qkv + 2 * C, a.attn.data(), a.lse.data(), 0),
                     "attention");
    linear_forward(d_ln_.data(), a.attn.data(), w.attn_proj_w, w.attn_proj_b, C, C);  // d_ln_ as scratch
    backend_.check(k_.add(ctx, a.residual_mid.data(), a.residual_in.data(), d_ln_.data(), rows_ * C), "residual");

    backend_.check(k_.layernorm_forward(ctx, a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.residual_mid.data(),
                                        w.ln2_w, w.ln2_b, rows_, C, shape_.ln_eps), "layernorm");
    linear_forward(a.fc_pre.data(), a.ln2.data(), w.fc_w, w.fc_b, C, 4 * C);
    backend_.check(k_.gelu_forward(ctx, a.fc_act.data(), a.fc_pre.data(), rows_ * 4 * C), "gelu");
    linear_forward(d_ln_.data(), a.fc_act.data(), w.fc_proj_w, w.fc_proj_b, 4 * C, C);
    backend_.check(k_.add(ctx, block_out, a.residual_mid.data(), d_ln_.data(), rows_ * C), "residual");
    placement_.on_unit(unit, DFM_UNIT_FORWARD_END, step);
  }

  backend_.check(k_.layernorm_forward(ctx, lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), residual_out_.data(),
                                      at(*root_.ln_f_weight, false), at(*root_.ln_f_bias, false), rows_, C, shape_.ln_eps),
                 "layernorm");
  // The LM head is tied to the token embedding: logits = lnf @ wte^T.
  matmul(false, true, rows_, V, C, lnf_.data(), C, at(*root_.wte, false), C, 0.0f, logits_.data(), V);
  placement_.on_unit(0, DFM_UNIT_FORWARD_END, step);
}

const float* GptModel::loss(const int32_t* targets, float grad_scale) {
  const int64_t V = shape_.vocab_size;
  backend_.check(k_.softmax_cross_entropy(backend_.ctx(), logits_.data(), targets, losses_.data(), rows_, V, V, grad_scale),
                 "softmax_cross_entropy");
  return losses_.data();
}

void GptModel::backward(const int32_t* tokens, const int32_t* positions, const dfm_step_info* step) {
  void* ctx = backend_.ctx();
  const int64_t C = shape_.d_model, V = shape_.vocab_size;
  const float* dlogits = logits_.data();
  float* d_res = d_residual_.data();

  placement_.on_unit(0, DFM_UNIT_BACKWARD_BEGIN, step);
  // Tied head: d(lnf) = dlogits @ wte; d(wte) += dlogits^T @ lnf.
  matmul(false, false, rows_, C, V, dlogits, V, at(*root_.wte, false), C, 0.0f, d_ln_.data(), C);
  matmul(true, false, V, C, rows_, dlogits, V, lnf_.data(), C, 1.0f, at(*root_.wte, true), C);
  backend_.fill(d_res, 0.0f, rows_ * C);
  backend_.check(k_.layernorm_backward(ctx, d_res, at(*root_.ln_f_weight, true), at(*root_.ln_f_bias, true), d_ln_.data(),
                                       residual_out_.data(), at(*root_.ln_f_weight, false), lnf_mean_.data(),
                                       lnf_rstd_.data(), rows_, C), "layernorm_backward");

  const dfm_attention_desc attn = attention_desc();
  for (size_t i = layers_.size(); i-- > 0;) {
    const auto unit = static_cast<int32_t>(i + 1);
    placement_.on_unit(unit, DFM_UNIT_BACKWARD_BEGIN, step);
    LayerActivations& a = layers_[i];
    const LayerWeights w = weights_of(static_cast<int64_t>(i), false);
    const LayerWeights g = weights_of(static_cast<int64_t>(i), true);
    // d_res holds dLoss/d(block output). MLP branch:
    linear_backward(d_fc_.data(), g.fc_proj_w, g.fc_proj_b, d_res, a.fc_act.data(), w.fc_proj_w, 4 * C, C);
    backend_.check(k_.gelu_backward(ctx, d_fc_.data(), a.fc_pre.data(), d_fc_.data(), rows_ * 4 * C), "gelu_backward");
    linear_backward(d_ln_.data(), g.fc_w, g.fc_b, d_fc_.data(), a.ln2.data(), w.fc_w, C, 4 * C);
    // The residual passes d_res through; the LayerNorm adds its part (kernels accumulate into din).
    backend_.check(k_.layernorm_backward(ctx, d_res, g.ln2_w, g.ln2_b, d_ln_.data(), a.residual_mid.data(), w.ln2_w,
                                         a.ln2_mean.data(), a.ln2_rstd.data(), rows_, C), "layernorm_backward");
    // Attention branch:
    linear_backward(d_attn_.data(), g.attn_proj_w, g.attn_proj_b, d_res, a.attn.data(), w.attn_proj_w, C, C);
    backend_.fill(d_qkv_.data(), 0.0f, rows_ * 3 * C);
    const float* qkv = a.qkv.data();
    float* dqkv = d_qkv_.data();
    if (sequence_ && step)
      sequence_->attention_backward(attn, qkv, qkv + C, qkv + 2 * C, a.attn.data(), d_attn_.data(), a.lse.data(), dqkv,
                                    dqkv + C, dqkv + 2 * C);
    else
      backend_.check(k_.attention_backward(ctx, &attn, qkv, qkv + C, qkv + 2 * C, a.attn.data(), d_attn_.data(),
                                           a.lse.data(), dqkv, dqkv + C, dqkv + 2 * C),
                     "attention_backward");
    linear_backward(d_ln_.data(), g.qkv_w, g.qkv_b, dqkv, a.ln1.data(), w.qkv_w, C, 3 * C);
    backend_.check(k_.layernorm_backward(ctx, d_res, g.ln1_w, g.ln1_b, d_ln_.data(), a.residual_in.data(), w.ln1_w,
                                         a.ln1_mean.data(), a.ln1_rstd.data(), rows_, C), "layernorm_backward");
    placement_.on_unit(unit, DFM_UNIT_BACKWARD_END, step);
  }

  backend_.check(k_.embedding_backward(ctx, at(*root_.wte, true), d_res, tokens, rows_, V, 0, C),
                 "embedding_backward");
  backend_.check(k_.embedding_backward(ctx, at(*root_.wpe, true), d_res, positions, rows_, shape_.seq_len, 0, C),
                 "embedding_backward");
  placement_.on_unit(0, DFM_UNIT_BACKWARD_END, step);
}

}  // namespace dfm
