#include "dfm/core/models/llama/llama_params.hpp"

#include <cmath>

namespace dfm {

int64_t llama_default_ffn_dim(int64_t d_model) {
  constexpr int64_t kMultiple = 256;
  const int64_t hidden = 8 * d_model / 3;
  return (hidden + kMultiple - 1) / kMultiple * kMultiple;
}

std::string llama_layer_name(int64_t layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

// Column-parallel projections (q, k, v, gate, up) are cut by their outputs,
// which are the first dimension of an nn.Linear weight; the row-parallel ones
// (o, down) by their inputs, the last. Heads are contiguous rows of q/k/v, so
// a band of rows holds whole heads.
std::vector<ParamInfo> llama_param_infos(const LlamaShape& s, int32_t slice, int32_t slices) {
  const int64_t C = s.d_model, F = s.ffn_dim;
  constexpr double kStd = 0.02;
  // The projections into the residual stream are scaled by 1/sqrt(2 n_layer), as GPT-2's (its paper, §2.3).
  const double residual_std = kStd / std::sqrt(2.0 * static_cast<double>(s.n_layer));
  using enum TensorCut;
  using enum InitKind;
  ParamTableBuilder t(slice, slices);
  t.add("model.embed_tokens.weight", {s.vocab_size, C}, Normal, 0, kStd, VocabRows);
  if (!s.tie_embeddings) t.read_at(PipelineEnd::Embedding);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    auto n = [l](const char* suffix) { return llama_layer_name(l, suffix); };
    const auto u = static_cast<int32_t>(l + 1);
    t.add(n("input_layernorm.weight"), {C}, Ones, u);
    t.add(n("self_attn.q_proj.weight"), {s.q_dim(), C}, Normal, u, kStd, Rows);
    t.add(n("self_attn.k_proj.weight"), {s.kv_dim(), C}, Normal, u, kStd, Rows);
    t.add(n("self_attn.v_proj.weight"), {s.kv_dim(), C}, Normal, u, kStd, Rows);
    t.add(n("self_attn.o_proj.weight"), {C, s.q_dim()}, Normal, u, residual_std, Columns);
    t.add(n("post_attention_layernorm.weight"), {C}, Ones, u);
    t.add(n("mlp.gate_proj.weight"), {F, C}, Normal, u, kStd, Rows);
    t.add(n("mlp.up_proj.weight"), {F, C}, Normal, u, kStd, Rows);
    t.add(n("mlp.down_proj.weight"), {C, F}, Normal, u, residual_std, Columns);
  }
  t.add("model.norm.weight", {C}, Ones, 0);
  t.read_at(PipelineEnd::Head);
  if (!s.tie_embeddings) {
    t.add("lm_head.weight", {s.vocab_size, C}, Normal, 0, kStd, VocabRows);
    t.read_at(PipelineEnd::Head);
  }
  return std::move(t).finish();
}

}  // namespace dfm
