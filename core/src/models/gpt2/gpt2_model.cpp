#include "dfm/core/models/gpt2/gpt2_model.hpp"

namespace dfm {

Gpt2Model::Gpt2Model(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, const GptShape& shape,
                     int64_t max_batch, ModelLayout layout)
    : ChunkedModel(backend, params, roles, std::move(layout), max_batch, shape.seq_len, shape.d_model),
      shape_(shape),
      vocab_(ops_, shape.vocab_size, shape.d_model, max_batch * shape.seq_len),
      local_c_(shape.d_model / roles.tensor->size()),
      local_fc_(4 * shape.d_model / roles.tensor->size()),
      root_{&params.info("wte.weight"), &params.info("wpe.weight"), &params.info("ln_f.weight"),
            &params.info("ln_f.bias")} {
  for (int64_t l = 0; l < shape.n_layer; ++l) {
    std::vector<const ParamInfo*> members;
    for (const char* suffix : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                               "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
                               "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      members.push_back(&params.info(gpt_layer_name(l, suffix)));
    layer_params_.push_back(std::move(members));
  }
  allocate_slots([&](const ModelChunk& chunk) { return make_slot(chunk, max_batch); });
  const int64_t R = max_batch * shape.seq_len, C = shape.d_model;
  d_ln_ = ActivationBuffer(backend, R * C);
  d_qkv_ = ActivationBuffer(backend, R * 3 * local_c_);
  d_attn_ = ActivationBuffer(backend, R * local_c_);
  d_fc_ = ActivationBuffer(backend, R * local_fc_);
}

Gpt2Slot Gpt2Model::make_slot(const ModelChunk& chunk, int64_t max_batch) {
  const int64_t R = max_batch * shape_.seq_len, O = ops_.outside_capacity(), C = shape_.d_model;
  const int64_t heads = shape_.n_head / ops_.tensor().size();
  auto act = [&](int64_t n) { return activations(n); };
  auto stat = [&](int64_t n) { return statistics(n); };
  Gpt2Slot a;
  for (int64_t l = 0; l < chunk.layers; ++l)
    a.layers.push_back({act(O * C), act(R * C), stat(O), stat(O), act(R * 3 * local_c_), act(R * local_c_),
                        stat(max_batch * heads * shape_.seq_len), act(O * C), act(R * C), stat(O), stat(O),
                        act(R * local_fc_), act(R * local_fc_)});
  a.output = act(O * C);
  a.output_grad = act(O * C);
  if (chunk.head) {
    a.lnf = act(R * C);
    a.lnf_mean = stat(O);
    a.lnf_rstd = stat(O);
    a.logits = act(R * vocab_.logits_stride());
    a.losses = stat(R);
  }
  return a;
}

Gpt2Model::LayerWeights Gpt2Model::weights_of(int64_t layer, bool grads) const {
  const auto& m = layer_params_[static_cast<size_t>(layer)];
  auto member = [&](size_t i) { return grads ? ops_.grad(*m[i]) : ops_.param(*m[i]); };
  return {member(0), member(1), member(2), member(3), member(4),  member(5),
          member(6), member(7), member(8), member(9), member(10), member(11)};
}

dfm_attention_desc Gpt2Model::attention() const {
  dfm_attention_desc d = ops_.attention_desc(shape_.n_head / ops_.tensor().size(), shape_.head_dim(), true);
  d.q_token_stride = d.kv_token_stride = 3 * local_c_;  // read Q, K, V in place from the fused QKV
  d.o_token_stride = local_c_;
  return d;
}

void Gpt2Model::layernorm_into_region(const float* x, const float* w, const float* b, float* mean, float* rstd,
                                      float* inside) {
  ops_.into_region(inside, shape_.d_model, [&](float* normed) {
    ops_.check(ops_.kernels().layernorm_forward(ops_.ctx(), normed, mean, rstd, x, w, b, ops_.outside_rows(),
                                                shape_.d_model, shape_.ln_eps),
               "layernorm");
  });
}

// The LayerNorm kernels accumulate into din: the residual passes d_stream
// through and the norm adds its part.
void Gpt2Model::layernorm_backward(float* d_stream, float* dw, float* db, const float* d_normed, const float* x,
                                   const float* w, const float* mean, const float* rstd) {
  ops_.check(ops_.kernels().layernorm_backward(ops_.ctx(), d_stream, dw, db, d_normed, x, w, mean, rstd,
                                               ops_.outside_rows(), shape_.d_model),
             "layernorm_backward");
}

// ---- forward ----

void Gpt2Model::embed_forward(Gpt2Slot& s, const MicroBatch& in) {
  float* x = s.input();
  vocab_.embed(in.tokens, ops_.param(*root_.wte), x);
  ops_.check(ops_.kernels().embedding_forward(ops_.ctx(), x, ops_.outside_positions(), ops_.outside_rows(),
                                              ops_.param(*root_.wpe), shape_.seq_len, 0, shape_.d_model, 1),
             "position embedding");
}

void Gpt2Model::block_forward(Gpt2Slot& s, int64_t i, int64_t layer) {
  Gpt2Slot::Layer& a = s.layers[static_cast<size_t>(i)];
  float* block_out = i + 1 < static_cast<int64_t>(s.layers.size())
                         ? s.layers[static_cast<size_t>(i + 1)].residual_in.data()
                         : s.output.data();
  ComputeBackend& backend = ops_.backend();
  const int64_t C = shape_.d_model, Cl = local_c_, rows = ops_.outside_rows();
  const LayerWeights w = weights_of(layer, false);

  // Attention: column-parallel QKV (this rank's heads), row-parallel projection.
  layernorm_into_region(a.residual_in.data(), w.ln1_w, w.ln1_b, a.ln1_mean.data(), a.ln1_rstd.data(), a.ln1.data());
  ops_.linear_forward(a.qkv.data(), a.ln1.data(), w.qkv_w, w.qkv_b, C, 3 * Cl);
  ops_.attention_forward(attention(), a.qkv.data(), a.qkv.at(Cl), a.qkv.at(2 * Cl), a.attn.data(), a.lse.data());
  const float* attn_out = ops_.row_parallel_forward(a.attn.data(), w.attn_proj_w, w.attn_proj_b, Cl);
  backend.add_activations(a.residual_mid.data(), a.residual_in.data(), attn_out, rows * C);

  // MLP: column-parallel first linear with the GELU on its epilogue, row-parallel second.
  layernorm_into_region(a.residual_mid.data(), w.ln2_w, w.ln2_b, a.ln2_mean.data(), a.ln2_rstd.data(), a.ln2.data());
  ops_.linear_gelu_forward(a.fc_act.data(), a.fc_pre.data(), a.ln2.data(), w.fc_w, w.fc_b, C, local_fc_);
  const float* mlp_out = ops_.row_parallel_forward(a.fc_act.data(), w.fc_proj_w, w.fc_proj_b, local_fc_);
  backend.add_activations(block_out, a.residual_mid.data(), mlp_out, rows * C);
}

void Gpt2Model::head_forward(Gpt2Slot& s) {
  layernorm_into_region(s.output.data(), ops_.param(*root_.ln_f_weight), ops_.param(*root_.ln_f_bias),
                        s.lnf_mean.data(), s.lnf_rstd.data(), s.lnf.data());
  // The LM head is tied to the token embedding: logits = lnf @ wte^T, this
  // rank's vocabulary rows only (the whole logits never exist on one rank).
  vocab_.logits(s.lnf.data(), ops_.param(*root_.wte), s.logits.data());
}

const float* Gpt2Model::head_loss(Gpt2Slot& s, const MicroBatch& in, float grad_scale) {
  vocab_.loss(s.logits.data(), in.targets, s.losses.data(), grad_scale);
  return s.losses.data();
}

void Gpt2Model::row_logits(int32_t chunk, int64_t row, float* out) {
  if (!layout().chunks[static_cast<size_t>(chunk)].head)
    throw std::logic_error("Gpt2Model::row_logits: chunk " + std::to_string(chunk) + " has no head");
  vocab_.row_logits(slot_of(chunk, 0).logits.data(), row, out);
}

// ---- backward ----

// d_stream = dLoss/d(the stream before ln_f), from the logits' gradient.
void Gpt2Model::head_backward(Gpt2Slot& s, float* d_stream) {
  // Tied head: d(lnf) from this rank's vocabulary rows, d(wte) += dlogits^T @ lnf.
  vocab_.logits_backward(s.logits.data(), s.lnf.data(), ops_.param(*root_.wte), ops_.grad(*root_.wte), d_ln_.data());
  const float* d_lnf = ops_.enter_backward(d_ln_.data());
  ops_.backend().fill_activations(d_stream, 0.0f, ops_.outside_rows() * shape_.d_model);
  layernorm_backward(d_stream, ops_.grad(*root_.ln_f_weight), ops_.grad(*root_.ln_f_bias), d_lnf, s.output.data(),
                     ops_.param(*root_.ln_f_weight), s.lnf_mean.data(), s.lnf_rstd.data());
}

// d_stream holds dLoss/d(block output), outside rows; it leaves as dLoss/d(block input).
void Gpt2Model::block_backward(Gpt2Slot& s, int64_t i, int64_t layer, float* d_stream) {
  Gpt2Slot::Layer& a = s.layers[static_cast<size_t>(i)];
  const dfm_compute_v1& k = ops_.kernels();
  const int64_t C = shape_.d_model, Cl = local_c_, Fl = local_fc_, rows = ops_.outside_rows();
  const LayerWeights w = weights_of(layer, false);
  const LayerWeights g = weights_of(layer, true);

  // MLP branch; its bias was added after the region, on the outside rows.
  ops_.check(k.bias_backward(ops_.ctx(), g.fc_proj_b, d_stream, rows, C), "bias_backward");
  const float* d_mlp_out = ops_.exit_backward(d_stream);
  // Through fc_proj and back through the GELU in one GEMM: d_fc = (d_mlp_out @ fc_proj_w^T) * GELU'(fc_pre).
  ops_.linear_backward(d_fc_.data(), g.fc_proj_w, nullptr, d_mlp_out, a.fc_act.data(), w.fc_proj_w, Fl, C,
                       a.fc_pre.data());
  ops_.linear_backward(d_ln_.data(), g.fc_w, g.fc_b, d_fc_.data(), a.ln2.data(), w.fc_w, C, Fl);
  layernorm_backward(d_stream, g.ln2_w, g.ln2_b, ops_.enter_backward(d_ln_.data()), a.residual_mid.data(), w.ln2_w,
                     a.ln2_mean.data(), a.ln2_rstd.data());

  // Attention branch.
  ops_.check(k.bias_backward(ops_.ctx(), g.attn_proj_b, d_stream, rows, C), "bias_backward");
  const float* d_attn_out = ops_.exit_backward(d_stream);
  ops_.linear_backward(d_attn_.data(), g.attn_proj_w, nullptr, d_attn_out, a.attn.data(), w.attn_proj_w, Cl, C);
  ops_.backend().fill_activations(d_qkv_.data(), 0.0f, ops_.rows() * 3 * Cl);
  ops_.attention_backward(attention(), a.qkv.data(), a.qkv.at(Cl), a.qkv.at(2 * Cl), a.attn.data(), d_attn_.data(),
                          a.lse.data(), d_qkv_.data(), d_qkv_.at(Cl), d_qkv_.at(2 * Cl));
  ops_.linear_backward(d_ln_.data(), g.qkv_w, g.qkv_b, d_qkv_.data(), a.ln1.data(), w.qkv_w, C, 3 * Cl);
  layernorm_backward(d_stream, g.ln1_w, g.ln1_b, ops_.enter_backward(d_ln_.data()), a.residual_in.data(), w.ln1_w,
                     a.ln1_mean.data(), a.ln1_rstd.data());
}

void Gpt2Model::embed_backward(Gpt2Slot&, const MicroBatch& in, float* d_stream) {
  ops_.check(ops_.kernels().embedding_backward(ops_.ctx(), ops_.grad(*root_.wpe), d_stream, ops_.outside_positions(),
                                               ops_.outside_rows(), shape_.seq_len, 0, shape_.d_model),
             "embedding_backward");
  vocab_.embed_backward(in.tokens, ops_.grad(*root_.wte), d_stream);
}

}  // namespace dfm
